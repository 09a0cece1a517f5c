"""The Graph webhook receiver on a loopback port: the validation handshake and the limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.notify.graph_receiver import MAX_BODY_BYTES, NotificationReceiver

PATH = "/pbxsync/graph/notify"
ANY_PORT = ListenAddress("127.0.0.1", 0)
TOKEN = "Validation: Testing client application reachability for subscription Request-Id: 9f3c"


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[NotificationReceiver, list[object]]]:
    got: list[object] = []
    server = NotificationReceiver(ANY_PORT, PATH, got.append)
    await server.start()
    yield server, got
    await server.close()


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def post(target: str, body: bytes = b"", content_type: str = "application/json", extra: str = "") -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: pbx.example.com\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def test_the_validation_token_is_echoed_as_text_while_a_subscription_is_created(
        receiver: tuple[NotificationReceiver, list[object]]) -> None:
    server, got = receiver
    with server.validating():
        status, headers, body = await exchange(server.port, post(f"{PATH}?validationToken={quote(TOKEN)}",
                                                                 content_type="text/plain; charset=utf-8"))
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert headers["x-content-type-options"] == "nosniff"
    assert body.decode() == TOKEN
    assert got == []


async def test_a_validation_request_at_any_other_time_is_refused(
        receiver: tuple[NotificationReceiver, list[object]]) -> None:
    server, _ = receiver
    status, _, body = await exchange(server.port, post(f"{PATH}?validationToken=echo-me", content_type="text/plain"))
    assert status == 403
    assert b"echo-me" not in body


async def test_a_notification_is_accepted_with_202_and_handed_on(
        receiver: tuple[NotificationReceiver, list[object]]) -> None:
    server, got = receiver
    payload = {"value": [{"subscriptionId": "s1", "clientState": "x", "changeType": "updated"}]}
    status, _, body = await exchange(server.port, post(PATH, json.dumps(payload).encode(),
                                                       "application/json; charset=utf-8"))
    assert (status, body) == (202, b"")
    assert got == [payload]
    assert server.received == 1


@pytest.mark.parametrize(("raw", "status"), [
    (post("/other/path", b"{}"), 404),
    (b"GET /pbxsync/graph/notify HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (post(PATH, b"<xml/>", "text/xml"), 415),
    (post(PATH, b"{not json"), 400),
    (post(PATH, b"\xff\xfe", "application/json"), 400),
    (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2\r\n{}\r\n0\r\n\r\n".encode(), 411),
    (post(PATH, b"", extra="Transfer-Encoding: chunked\r\n"), 400),  # both lengths: a smuggling attempt
    (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode(), 413),
    (b"POST " + b"/x" * 10000 + b" HTTP/1.1\r\n\r\n", 431),
    (b"HELLO\r\n\r\n", 400),
])
async def test_everything_else_is_refused_and_nothing_is_handed_on(
        receiver: tuple[NotificationReceiver, list[object]], raw: bytes, status: int) -> None:
    server, got = receiver
    assert (await exchange(server.port, raw))[0] == status
    assert got == []


async def test_a_validation_token_of_absurd_length_is_refused(
        receiver: tuple[NotificationReceiver, list[object]]) -> None:
    server, _ = receiver
    with server.validating():
        status, _, _ = await exchange(server.port, post(f"{PATH}?validationToken={'a' * 5000}", b"", "text/plain"))
    assert status == 400


async def test_a_handler_that_fails_does_not_break_the_receiver(caplog: pytest.LogCaptureFixture) -> None:
    def broken(payload: object) -> None:
        raise RuntimeError("bug")

    server = NotificationReceiver(ANY_PORT, PATH, broken)
    await server.start()
    try:
        assert (await exchange(server.port, post(PATH, b'{"value": []}')))[0] == 202
        assert (await exchange(server.port, post(PATH, b'{"value": []}')))[0] == 202
    finally:
        await server.close()
    assert "handling a notification failed" in caplog.text
