"""The control endpoint's HTTP site refuses garbage with 400 and keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pbxsync.plugin.daemon.control import CONTROL_LIMITS, control_app
from pbxsync.plugin.daemon.control_guard import Guard
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.http_site import start_site
from pbxsync.sync.listen import ListenAddress


class Target:
    def __init__(self) -> None:
        self.synced: list[str | None] = []

    def status(self) -> dict[str, object]:
        return {"ok": True, "services": []}

    async def sync_now(self, extension: str | None) -> PassSummary:
        from datetime import UTC, datetime

        self.synced.append(extension)
        return PassSummary(datetime(2026, 11, 27, tzinfo=UTC))

    async def reload(self) -> bool:
        return False


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int, Target]]:
    target = Target()
    site = await start_site(control_app(target, Guard.for_tcp("127.0.0.1", "")), ListenAddress("127.0.0.1", 0),
                            limits=CONTROL_LIMITS)
    yield "127.0.0.1", site.port, target
    await site.close()


def allowed(raw: bytes) -> bytes:
    """The request as the CLI sends it: a loopback Host, and JSON bodies labelled as such."""
    line, sep, rest = raw.partition(b"\r\n")
    if not sep:
        return raw
    extra = b"Host: 127.0.0.1\r\n" + (b"Content-Type: application/json\r\n" if line.startswith(b"POST") else b"")
    return line + sep + extra + rest


async def exchange(host: str, port: int, raw: bytes) -> bytes:
    raw = allowed(raw)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(raw)
    if not raw.endswith(b"\r\n\r\n") or b"Content-Length" in raw:
        writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_requests_and_hostile_input(server: tuple[str, int, Target]) -> None:
    host, port, target = server
    ok = await exchange(host, port, b"GET /status HTTP/1.1\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 OK") and b'"ok": true' in ok
    body = b'{"user": "101"}'
    synced = await exchange(host, port, b"POST /sync HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert synced.startswith(b"HTTP/1.1 200") and target.synced == ["101"]
    for raw, status in [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /status HTTP/1.1\r\n" + b"X: " + b"a" * 40000 + b"\r\n\r\n", b"400"),
        (b"POST /sync HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", b"400"),
        (b"POST /sync HTTP/1.1\r\nContent-Length: 5\r\n\r\nnot j", b"400"),
        (b'POST /sync HTTP/1.1\r\nContent-Length: 12\r\n\r\n{"user": 12}', b"400"),
        (b"GET /status HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", b"400"),  # truncated body
        (b"DELETE /status HTTP/1.1\r\n\r\n", b"405"),
        (b"GET /nope HTTP/1.1\r\n\r\n", b"404"),
        (b"POST /reload HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"422"),
    ]:
        answer = await exchange(host, port, raw)
        assert answer.split(b" ")[1] == status, (raw[:40], answer[:80])
    assert (await exchange(host, port, b"GET /status HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
    assert target.synced == ["101"]
