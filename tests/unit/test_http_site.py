"""The one HTTP site starter: where it listens, TLS, and the limits every listener gets."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from pbxsync.plugin.ldap.server import LdapServerError, make_tls_context
from pbxsync.sync.http_site import HttpSiteError, Limits, Site, start_site, tls_context
from pbxsync.sync.listen import ListenAddress
from tests.support.ldap_phonebook import self_signed_certificate

ANY_PORT = ListenAddress("127.0.0.1", 0)


def echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["seconds"]))  # a handler at work (a sync pass), not a wait
        return web.Response(text="done")

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret /etc/pbxsync/pbxsync.toml detail")

    app = web.Application()
    app.router.add_get("/broken", broken)
    app.router.add_post("/echo", echo)
    app.router.add_get("/hello", hello)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Site]]]:
    sites: list[Site] = []

    async def starter(where: ListenAddress | str = ANY_PORT, **options: object) -> Site:
        site = await start_site(echo_app(), where, **options)  # type: ignore[arg-type]
        sites.append(site)
        return site

    yield starter
    for site in sites:
        await site.close()


async def exchange(site: Site, raw: bytes, eof: bool = False) -> bytes:
    if site.path is not None:
        reader, writer = await asyncio.open_unix_connection(site.path)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(raw)
    if eof:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


GET = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def test_port_0_reports_the_port_it_got(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start()
    assert site.port > 0 and site.address == f"127.0.0.1:{site.port}"
    answer = await exchange(site, GET)
    assert status(answer) == 200 and answer.endswith(b"hello")
    assert b"connection: close" in answer.lower()  # one request per connection unless keep_alive
    assert b"server: pbxsync\r\n" in answer.lower() and b"aiohttp" not in answer.lower()  # no versions
    refused = await exchange(site, b"HELLO\r\n\r\n")
    assert status(refused) == 400 and b"aiohttp" not in refused.lower()


async def test_aiohttp_s_own_404_closes_the_connection_too(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start()
    answer = await exchange(site, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")  # read() ends: closed
    assert status(answer) == 404 and b"connection: close" in answer.lower()


async def test_an_ipv6_address_is_shown_in_brackets(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(ListenAddress("::1", 0))
    assert site.address == f"[::1]:{site.port}"
    reader, writer = await asyncio.open_connection("::1", site.port)
    writer.write(GET)
    assert status(await asyncio.wait_for(reader.read(), 5)) == 200
    writer.close()


async def test_a_unix_socket_is_for_owner_and_group_and_goes_with_the_site(
        start: Callable[..., Awaitable[Site]], tmp_path: Path) -> None:
    path = tmp_path / "run" / "web.sock"
    site = await start(str(path))
    assert site.address == str(path) and site.port == 0
    assert path.stat().st_mode & 0o777 == 0o660
    assert status(await exchange(site, GET)) == 200
    with pytest.raises(OSError, match="address already in use"):
        await start_site(echo_app(), str(path))
    await site.close()
    assert not path.exists()


async def test_tls(start: Callable[..., Awaitable[Site]], tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    site = await start(tls=tls_context(str(cert), str(key), "web.tls_cert/tls_key"))
    client = ssl.create_default_context(cafile=str(cert))
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port, ssl=client)
    writer.write(GET)
    assert status(await asyncio.wait_for(reader.read(), 5)) == 200
    writer.close()


def test_an_unreadable_certificate_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(HttpSiteError, match=r"web\.tls_cert/tls_key: cannot load"):
        tls_context(str(tmp_path / "missing.crt"), str(tmp_path / "missing.key"), "web.tls_cert/tls_key")
    # LDAP's listener loads its certificate the same way, with its own error and keys named
    with pytest.raises(LdapServerError, match=r"^ldap\.tls_cert/tls_key: cannot load"):
        make_tls_context(str(tmp_path / "missing.crt"), str(tmp_path / "missing.key"))


def post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.mark.parametrize(("raw", "eof", "expected"), [
    (post(b"abc"), False, 200),
    (b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\n\r\n", False, 431),
    (b"GET /hello HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", False, 431),
    (post(b"a" * 2000), False, 413),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", False, 411),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", True, 400),  # cut short
    (b"HELLO\r\n\r\n", False, 400),
])
async def test_the_caps(start: Callable[..., Awaitable[Site]], raw: bytes, eof: bool, expected: int) -> None:
    site = await start(limits=Limits(max_header_bytes=16 * 1024, max_body_bytes=1000))
    assert status(await exchange(site, raw, eof)) == expected


async def test_a_whole_request_then_a_closed_writing_side_is_answered(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start()
    answer = await exchange(site, post(b"abc"), eof=True)
    assert status(answer) == 200 and answer.endswith(b"abc")


async def test_chunked_bodies_where_wanted(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(limits=Limits(chunked=True))
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert (await exchange(site, raw)).endswith(b"abc")


async def test_one_refusal_status_for_every_refusal(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(limits=Limits(max_body_bytes=10, refusal_status=400, request_deadline=0.2))
    assert status(await exchange(site, post(b"a" * 20))) == 400
    assert status(await exchange(site, b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\n\r\n")) == 400
    assert status(await exchange(site, b"GET /hello HTTP/1.1\r\n")) == 400  # too slow


async def test_a_slow_request_gets_408_and_an_idle_connection_just_ends(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(limits=Limits(request_deadline=0.2))
    assert status(await exchange(site, b"GET /hello HTTP/1.1\r\nHost: x\r\n")) == 408  # headers never end
    assert status(await exchange(site, post(b"abc")[:-2])) == 408  # the body never ends
    assert await exchange(site, b"") == b""  # connected, said nothing: closed, no answer


async def test_the_deadline_does_not_cut_a_handler_that_works_longer(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(limits=Limits(request_deadline=0.1))
    answer = await exchange(site, b"GET /slow?seconds=0.4 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(answer) == 200 and answer.endswith(b"done")


async def test_keep_alive_serves_several_requests_and_the_deadline_ends_the_idle_wait(
        start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(limits=Limits(keep_alive=True, request_deadline=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    try:
        for _ in range(3):
            writer.write(GET)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert status(head) == 200
            await reader.readexactly(5)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # idle past the deadline: closed
    finally:
        writer.close()


async def test_connections_over_the_cap_get_503_at_once(start: Callable[..., Awaitable[Site]]) -> None:
    site = await start(limits=Limits(max_connections=3, per_source=3, request_deadline=5))
    idle = [(await asyncio.open_connection("127.0.0.1", site.port))[1] for _ in range(3)]
    try:
        await asyncio.sleep(0.05)
        answer = await exchange(site, GET)
        assert answer.startswith(b"HTTP/1.1 503") or answer == b""  # a reset may eat the 503
    finally:
        for writer in idle:
            writer.close()


async def test_close_does_not_wait_for_an_answer_in_the_works_which_still_arrives() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()  # e.g. a reload that is closing this very site
        return web.Response(text="answered")

    app = web.Application()
    app.router.add_get("/held", held)
    site = await start_site(app, ANY_PORT)
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await entered.wait()
    await asyncio.wait_for(site.close(), 5)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", site.port)  # no longer listening
    release.set()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert status(answer) == 200 and answer.endswith(b"answered")
    writer.close()


async def test_a_failing_handler_shows_no_traceback_even_in_asyncio_debug_mode(
        start: Callable[..., Awaitable[Site]]) -> None:
    # `python -X dev` (or PYTHONASYNCIODEBUG) turns aiohttp's debug on: its 500 page would carry the traceback
    loop = asyncio.get_running_loop()
    was = loop.get_debug()
    loop.set_debug(True)
    try:
        site = await start()
        answer = await exchange(site, b"GET /broken HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n"
                                      b"Connection: close\r\n\r\n")
    finally:
        loop.set_debug(was)
    assert status(answer) == 500
    assert b"Traceback" not in answer and b"secret" not in answer and b"pbxsync.toml" not in answer
