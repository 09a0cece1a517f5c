"""The control endpoint against a hostile web page, a rebound host name, floods and garbage (issue 14).

The daemon runs in-process with both ways in: the Unix socket and TCP with a token. Requests are sent raw,
the way a browser or an attacker would, not through the CLI's client.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.control_client import daemon_status, trigger_sync_in_daemon
from pbxsync.plugin.daemon.service import SiteService
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.model import ContactChanges
from tests.support.quiet_source import QuietSource

TOKEN = "s3cret-control-token"


class CountingSource(QuietSource):
    """Counts passes; `gate`, when set, holds every pass until it opens."""

    def __init__(self) -> None:
        self.contacts_calls = 0
        self.gate: asyncio.Event | None = None

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        self.contacts_calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return await super().sync_contacts(mailbox, sync_state)


def make_config(tmp_path: Path) -> Config:
    token = tmp_path / "control.token"
    token.write_text(TOKEN + "\nsecond line is ignored\n", encoding="utf-8")
    token.chmod(0o600)
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"username": "svc@example.com", "server": "http://127.0.0.1:1/EWS/Exchange.asmx"},
        "sync": {"interval_minutes": 0},
        "users": [{"extension": "101", "email": "alice@example.com"}],
        "control": {"socket": str(tmp_path / "control.sock"), "listen": "127.0.0.1:0",
                    "token_file": str(token), "metrics_listen": ""},
        "agi": {"enabled": False}, "ldap": {"enabled": False},
    }, str(tmp_path / "pbxsync.toml"))


@dataclass
class Endpoint:
    daemon: Daemon
    source: CountingSource
    socket_path: str
    port: int
    reloads: list[str]

    async def send(self, raw: bytes, *, unix: bool) -> tuple[int, bytes]:
        if unix:
            reader, writer = await asyncio.open_unix_connection(self.socket_path)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), body


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    reloads: list[str] = []
    config = make_config(tmp_path)

    def loader(path: str | None) -> Config:
        reloads.append(str(path))
        return config

    source = CountingSource()
    daemon = Daemon(config, make_source=lambda _c: source, config_loader=loader)
    await daemon.start()
    tcp = daemon.supervisor.service("control-tcp")
    assert isinstance(tcp, SiteService)
    port = int(tcp.address.rpartition(":")[2])
    yield Endpoint(daemon, source, config.control.socket, port, reloads)
    await daemon.shutdown()


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def browser_post(path: str, **extra: str) -> bytes:
    """What a page on evil.example makes the admin's browser send: a "simple" request, no preflight."""
    return request("POST", path, b'{"user": "101"}', Host="127.0.0.1", Origin="https://evil.example",
                   Content_Type="text/plain;charset=UTF-8", **extra)


@pytest.mark.parametrize("unix", [True, False], ids=["unix-socket", "tcp"])
async def test_a_browser_style_post_from_a_foreign_origin_changes_nothing(endpoint: Endpoint, unix: bool) -> None:
    for path in ("/sync", "/reload"):
        status, _ = await endpoint.send(browser_post(path), unix=unix)
        assert status == 403
        # even a page that somehow knew the token is refused: it is the Origin that says "a web page"
        status, _ = await endpoint.send(browser_post(path, Authorization=f"Bearer {TOKEN}"), unix=unix)
        assert status == 403
        good_type = request("POST", path, b"{}", Host="localhost", Origin="null", Content_Type="application/json",
                            Authorization=f"Bearer {TOKEN}")
        assert (await endpoint.send(good_type, unix=unix))[0] == 403
    assert endpoint.source.contacts_calls == 0, "no pass started"
    assert endpoint.reloads == [], "no reload"


@pytest.mark.parametrize("unix", [True, False], ids=["unix-socket", "tcp"])
async def test_only_json_posts_to_a_named_host_get_through(endpoint: Endpoint, unix: bool) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    plain = request("POST", "/sync", b'{"user": "101"}', Host="localhost", Content_Type="text/plain", **auth)
    assert (await endpoint.send(plain, unix=unix))[0] == 415
    form = request("POST", "/reload", b"a=b", Host="localhost",
                   Content_Type="application/x-www-form-urlencoded", **auth)
    assert (await endpoint.send(form, unix=unix))[0] == 415
    rebound = request("GET", "/status", Host="evil.example:8459", **auth)  # DNS rebinding
    assert (await endpoint.send(rebound, unix=unix))[0] == 403
    no_host = request("GET", "/status", **auth)
    # HTTP/1.1 without Host is malformed (RFC 9112 3.2: 400), refused by aiohttp's parser before the guard;
    # HTTP/1.0 may omit it, and the guard refuses that
    assert (await endpoint.send(no_host, unix=unix))[0] == 400
    assert (await endpoint.send(no_host.replace(b"HTTP/1.1", b"HTTP/1.0", 1), unix=unix))[0] == 403
    assert endpoint.source.contacts_calls == 0 and endpoint.reloads == []
    status, body = await endpoint.send(request("GET", "/status", Host="localhost:8459", **auth), unix=unix)
    assert status == 200 and json.loads(body)["ok"] is True


async def test_tcp_needs_the_token_from_the_first_line_of_the_token_file(endpoint: Endpoint) -> None:
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                 {"Authorization": f"Bearer {TOKEN}\nsecond line is ignored"}):
        status, _ = await endpoint.send(request("POST", "/sync", b"{}", Host="127.0.0.1",
                                                Content_Type="application/json", **auth), unix=False)
        assert status in (400, 401), auth
    assert endpoint.source.contacts_calls == 0
    status, _ = await endpoint.send(request("POST", "/sync", b"{}", Host="127.0.0.1",
                                            Content_Type="application/json; charset=utf-8",
                                            Authorization=f"Bearer {TOKEN}"), unix=False)
    assert status == 200 and endpoint.source.contacts_calls == 1
    # the Unix socket needs no token: its file permissions decide
    status, _ = await endpoint.send(request("GET", "/status", Host="localhost"), unix=True)
    assert status == 200


async def test_the_socket_file_is_only_for_owner_and_group(endpoint: Endpoint) -> None:
    assert Path(endpoint.socket_path).stat().st_mode & 0o777 == 0o660


@pytest.mark.parametrize("unix", [True, False], ids=["unix-socket", "tcp"])
async def test_deeply_nested_json_is_answered_400(endpoint: Endpoint, unix: bool) -> None:
    for body in (b"[" * 50000, b'{"user": ' + b"[" * 20000 + b"]" * 20000 + b"}", b'{"a":' * 9 + b"1" + b"}" * 9):
        status, _ = await endpoint.send(request("POST", "/sync", body, Host="localhost",
                                                Content_Type="application/json",
                                                Authorization=f"Bearer {TOKEN}"), unix=unix)
        assert status == 400, body[:20]
    assert endpoint.source.contacts_calls == 0


async def test_forty_concurrent_sync_now_requests_run_one_pass(endpoint: Endpoint) -> None:
    daemon = endpoint.daemon
    gate = asyncio.Event()
    endpoint.source.gate = gate
    arrived = 0
    original = daemon.sync_now

    async def counted(extension: str | None) -> PassSummary:
        nonlocal arrived
        arrived += 1
        if arrived == 40:
            gate.set()  # every request is in while the first pass still runs
        return await original(extension)

    daemon.sync_now = counted  # type: ignore[method-assign]
    body = b"{}"
    answers = await asyncio.gather(*(
        endpoint.send(request("POST", "/sync", body, Host="localhost", Content_Type="application/json",
                              Authorization=f"Bearer {TOKEN}"), unix=bool(i % 2))
        for i in range(40)))
    assert [status for status, _ in answers] == [200] * 40
    assert endpoint.source.contacts_calls == 1, "one pass for all forty"
    endpoint.source.gate = None
    # a request after the pass ended starts a fresh one
    assert await asyncio.to_thread(trigger_sync_in_daemon, daemon.config, None) is not None
    assert endpoint.source.contacts_calls == 2


async def test_the_cli_talks_over_the_socket(endpoint: Endpoint) -> None:
    doc = await asyncio.to_thread(daemon_status, endpoint.daemon.config)
    assert doc is not None and doc["ok"] is True
    assert {s["name"] for s in doc["services"]} >= {"control", "control-tcp", "sync"}


async def test_a_reload_reads_the_config_off_the_event_loop(endpoint: Endpoint) -> None:
    """`password_command` runs while the config is read: it must not hold the loop (issue 14)."""
    threads: list[bool] = []
    loader = endpoint.daemon._load_config

    def recording(path: str | None) -> Config:
        threads.append(threading.current_thread() is threading.main_thread())
        result: Config = loader(path)
        return result

    endpoint.daemon._load_config = recording
    assert await endpoint.daemon.reload() is True
    assert threads == [False]
