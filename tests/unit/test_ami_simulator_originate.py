"""The AMI simulator answers an Originate without a Channel like Asterisk 22's manager.c action_originate:
`astman_send_error(s, m, "Channel not specified")` before anything else is looked at (Async included),
and no call is placed, so no OriginateResponse follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    s = AsteriskSimulator(phones=[Phone("101")], time_scale=0.0)
    await s.start()
    yield s
    await s.stop()


async def read_message(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def logged_in(sim: AsteriskSimulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    assert await asyncio.wait_for(reader.readline(), 5) == b"Asterisk Call Manager/11.0.0\r\n"
    writer.write(b"Action: Login\r\nUsername: agent\r\nSecret: agentsecret\r\nActionID: l1\r\n\r\n")
    assert (await read_message(reader)).startswith(b"Response: Success\r\nActionID: l1\r\n")
    assert (await read_message(reader)).startswith(b"Event: FullyBooted\r\n")
    return reader, writer


@pytest.mark.parametrize("headers", [
    b"Context: pbxsync-autocall\r\nExten: s\r\nPriority: 1\r\nAsync: true\r\n",
    b"Context: pbxsync-autocall\r\nExten: s\r\nPriority: 1\r\n",  # synchronous
    b"Channel: \r\nApplication: ConfBridge\r\nData: 8001\r\nAsync: true\r\n",  # empty value counts as missing
])
async def test_originate_without_channel_is_an_error_and_dials_nothing(sim: AsteriskSimulator,
                                                                       headers: bytes) -> None:
    reader, writer = await logged_in(sim)
    try:
        writer.write(b"Action: Originate\r\n" + headers + b"ActionID: o1\r\n\r\n")
        assert await read_message(reader) == (
            b"Response: Error\r\nActionID: o1\r\nMessage: Channel not specified\r\n\r\n")
        # no OriginateResponse (nor anything else) comes before the reply to the next action
        writer.write(b"Action: Ping\r\nActionID: p1\r\n\r\n")
        assert (await read_message(reader)).startswith(b"Response: Success\r\nActionID: p1\r\nPing: Pong\r\n")
        assert sim.channel_counter == 0 and sim.rooms == {}
    finally:
        writer.close()


async def test_originate_without_channel_or_action_id_has_no_action_id_line(sim: AsteriskSimulator) -> None:
    reader, writer = await logged_in(sim)
    try:
        writer.write(b"Action: Originate\r\nExten: s\r\nAsync: true\r\n\r\n")
        assert await read_message(reader) == b"Response: Error\r\nMessage: Channel not specified\r\n\r\n"
    finally:
        writer.close()
