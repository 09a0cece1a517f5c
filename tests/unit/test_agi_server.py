"""The FastAGI server: request parsing, limits, the command API, sanitising, and hostile connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxsync.plugin.agi.server import (
    AgiError,
    AgiHangup,
    AgiLimits,
    AgiSession,
    FastAgiServer,
    parse_reply,
    quote,
    sanitize_value,
)
from tests.support.agi import env_block, fake_asterisk


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[FastAgiServer, list[AgiSession]]]:
    sessions: list[AgiSession] = []

    async def callerid(session: AgiSession) -> None:
        sessions.append(session)
        await session.set_variable("CALLERID(name)", "Erika \"Boss\" Muster\r\nHANGUP\\")
        await session.set_variable("PBXSYNC_CALLERID_SOURCE", "contact")

    server = FastAgiServer({"callerid": callerid}, "127.0.0.1", 0,
                           AgiLimits(idle_timeout_seconds=0.5, max_connections=50, max_request_bytes=4096))
    await server.start()
    yield server, sessions
    await server.close()


async def test_serves_a_request_and_sends_sanitised_commands(recorded: tuple[FastAgiServer, list[AgiSession]]
                                                             ) -> None:
    server, sessions = recorded
    commands = await fake_asterisk(server.port, env_block(arg_1="101", arg_2="x y"))
    assert commands == ['SET VARIABLE CALLERID(name) "Erika \\"Boss\\" Muster HANGUP\\\\"',
                        'SET VARIABLE PBXSYNC_CALLERID_SOURCE "contact"']
    request = sessions[0].request
    assert request.path == "callerid" and request.args == ("101", "x y")
    assert request.get("callerid") == "03012344711"
    assert server.served == 1


async def test_query_string_and_slashes_route_to_the_service(recorded: tuple[FastAgiServer, list[AgiSession]]
                                                            ) -> None:
    server, sessions = recorded
    await fake_asterisk(server.port, env_block("callerid?debug=1"))
    assert sessions[0].request.path == "callerid" and sessions[0].request.query == "debug=1"


@pytest.mark.parametrize(("block", "why"), [
    (b"", "closed mid-request"),
    (b"agi_network: yes\nagi_network_script: callerid\n", "closed mid-request"),
    (b"agi_network: yes\nagi_network_scr", "mid-line"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not an agi_* line"),
    (b"\n", "empty request"),
    (b"agi_x: " + b"A" * 5000 + b"\n\n", "longer than"),
    (b"".join(b"agi_v%d: %s\n" % (i, b"x" * 200) for i in range(40)) + b"\n", "larger than"),
    (b"".join(b"agi_v%d: 1\n" % i for i in range(80)) + b"\n", "more than 64 lines"),
    (b"agi_network: \xff\xfe\n\n", "not UTF-8"),
    (env_block("nosuchservice"), "unknown service"),
])
async def test_bad_requests_are_closed_with_a_log_line(
    recorded: tuple[FastAgiServer, list[AgiSession]], caplog: pytest.LogCaptureFixture, block: bytes, why: str
) -> None:
    server, sessions = recorded
    caplog.set_level(logging.WARNING, "pbxsync.agi")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(block)
    await writer.drain()
    if why in ("closed mid-request", "mid-line"):
        writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed without a command
    writer.close()
    assert why in caplog.text
    assert sessions == []
    # and the next caller is served
    assert len(await fake_asterisk(server.port, env_block())) == 2


async def test_idle_connection_is_closed(recorded: tuple[FastAgiServer, list[AgiSession]],
                                         caplog: pytest.LogCaptureFixture) -> None:
    server, _ = recorded
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert "idle" in caplog.text


async def test_connection_limit_refuses_extra_connections(caplog: pytest.LogCaptureFixture) -> None:
    gate = asyncio.Event()

    async def slow(session: AgiSession) -> None:
        await gate.wait()

    server = FastAgiServer({"slow": slow}, "127.0.0.1", 0, AgiLimits(max_connections=2))
    await server.start()
    try:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        for _, w in held:
            w.write(env_block("slow"))
        await asyncio.wait_for(_until(lambda: server.active == 2), 5)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert server.rejected == 1 and "limit" in caplog.text
        gate.set()
        for r, w in held:
            assert await asyncio.wait_for(r.read(), 5) == b""
            w.close()
    finally:
        await server.close()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def test_command_api_parses_replies() -> None:
    seen: dict[str, object] = {}

    async def service(session: AgiSession) -> None:
        seen["var"] = await session.get_variable("CALLERID(num)")
        seen["missing"] = await session.get_variable("NOPE")
        seen["answer"] = await session.answer()
        seen["pin"] = await session.get_data("conf-getpin", 5000, 6)
        seen["timeout"] = await session.get_data("conf-getpin", 5000, 6)
        seen["stream"] = (await session.stream_file("beep", "#")).extra
        seen["verbose"] = (await session.verbose("hi\nthere")).ok
        try:
            await session.command("NOOP")
        except AgiError as exc:
            seen["usage"] = str(exc)
        else:
            seen["usage"] = "multi-line reply consumed"
        with pytest.raises(AgiHangup):
            await session.set_variable("X", "1")

    replies = iter(["200 result=1 (0301 (x) 2)", "200 result=0", "200 result=0", "200 result=1234#",
                    "200 result= (timeout)", "200 result=0 endpos=8000", "200 result=1",
                    "520-Invalid command syntax.  Proper usage follows:\nUsage: NOOP\n520 End of proper usage.",
                    "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine"])
    server = FastAgiServer({"svc": service}, "127.0.0.1", 0)
    await server.start()
    try:
        commands = await fake_asterisk(server.port, env_block("svc"), lambda c: next(replies))
    finally:
        await server.close()
    assert commands[:7] == ["GET VARIABLE CALLERID(num)", "GET VARIABLE NOPE", "ANSWER",
                            "GET DATA conf-getpin 5000 6", "GET DATA conf-getpin 5000 6", 'STREAM FILE beep "#"',
                            'VERBOSE "hi there" 1']
    assert seen == {"var": "0301 (x) 2", "missing": None, "answer": True, "pin": "1234#", "timeout": None,
                    "stream": {"endpos": "8000"}, "verbose": True, "usage": "multi-line reply consumed"}


def test_parse_reply() -> None:
    assert parse_reply("200 result=1 (hello world)").data == "hello world"
    assert parse_reply("200 result=-1").result == "-1"
    assert parse_reply("510 Invalid or unknown command").code == 510
    with pytest.raises(AgiError):
        parse_reply("garbage")


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", '"plain"'),
    ('a"b', '"a\\"b"'),
    ("back\\slash", '"back\\\\slash"'),
    ("line\r\nbreak\0nul\ttab", '"line break nul tab"'),
    ("${SHELL(rm -rf /)}", '"{SHELL(rm -rf /)}"'),
    ("$${SHELL(id)}", '"{SHELL(id)}"'),
    ("$$$[1+1]", '"[1+1]"'),
    ("x" * 1000, '"' + "x" * 256 + '"'),
    ("Jürgen Weiß", '"Jürgen Weiß"'),
])
def test_quote(value: str, expected: str) -> None:
    assert quote(value) == expected


@given(st.text(max_size=2000))
def test_sanitised_values_never_hold_line_breaks_or_long_text(value: str) -> None:
    clean = sanitize_value(value)
    assert not any(c in clean for c in "\r\n\0\x85\u2028\u2029")
    assert len(clean) <= 256 and "${" not in clean


async def test_rejects_bad_variable_and_file_names() -> None:
    errors: list[str] = []

    async def service(session: AgiSession) -> None:
        for call in (lambda: session.set_variable("X Y", "1"), lambda: session.set_variable("A\nB", "1"),
                     lambda: session.stream_file("../../etc/passwd"), lambda: session.get_data("a b")):
            try:
                await call()
            except AgiError as exc:
                errors.append(str(exc))

    server = FastAgiServer({"svc": service}, "127.0.0.1", 0)
    await server.start()
    try:
        assert await fake_asterisk(server.port, env_block("svc")) == []
    finally:
        await server.close()
    assert len(errors) == 4


hostile_chunks = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda b, n: env_block()[:n] + b, st.binary(max_size=200), st.integers(0, 400)),
    st.builds(lambda n: b"agi_x: " + b"y" * n, st.integers(0, 20000)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(hostile_chunks, min_size=1, max_size=3), close_early=st.booleans())
async def test_fuzz_hostile_connections_never_stop_others_being_served(chunks: list[bytes],
                                                                       close_early: bool) -> None:
    served: list[str] = []

    async def callerid(session: AgiSession) -> None:
        await session.set_variable("PBXSYNC_CALLERID_SOURCE", "none")
        served.append(session.request.get("callerid"))

    server = FastAgiServer({"callerid": callerid}, "127.0.0.1", 0,
                           AgiLimits(idle_timeout_seconds=0.3, max_request_bytes=4096))
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for chunk in chunks:
            writer.write(chunk)
        if close_early:
            writer.write_eof()
        # a good caller at the same time is served, whatever the hostile one does
        good = await fake_asterisk(server.port, env_block(callerid="0301234"))
        assert good == ['SET VARIABLE PBXSYNC_CALLERID_SOURCE "none"']
        # the hostile connection ends (closed by the server, or served if it happened to be valid)
        with contextlib.suppress(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert "0301234" in served
        assert server.active == 0 or await _settled(server)
    finally:
        await server.close()


async def _settled(server: FastAgiServer) -> bool:
    await asyncio.wait_for(_until(lambda: server.active == 0), 5)
    return True
