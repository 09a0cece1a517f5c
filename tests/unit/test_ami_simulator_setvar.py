"""The AMI simulator answers Setvar/Getvar of the custom device and presence states as Asterisk 22 does
(tests.support.presence.SETVAR_EXCHANGES, replayed on the real one in test_presence_asterisk.py)."""

from __future__ import annotations

import asyncio

from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.ami.wire import AmiDecoder, AmiMessage, encode_action
from tests.support.presence import SETVAR_EVENTS, SETVAR_EXCHANGES

USER = SimUser("pbxsync", "s3cret", frozenset({"call", "system"}), frozenset({"originate", "call", "reporting"}))


async def read_message(reader: asyncio.StreamReader, decoder: AmiDecoder, buffered: list[AmiMessage]) -> AmiMessage:
    while not buffered:
        buffered.extend(decoder.feed(await asyncio.wait_for(reader.read(65536), 5)))
    return buffered.pop(0)


async def test_setvar_and_getvar_answer_like_asterisk_22() -> None:
    sim = AsteriskSimulator(users=[USER], login_fail_delay=0.0)
    port = await sim.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder, buffered, events = AmiDecoder(), [], []
    try:
        writer.write(encode_action("Login", [("Username", "pbxsync"), ("Secret", "s3cret"), ("ActionID", "login")]))
        for n, (action, headers, expected) in enumerate([("Login", {}, {"Response": "Success"}), *SETVAR_EXCHANGES]):
            if n:
                writer.write(encode_action(action, [*headers.items(), ("ActionID", f"a{n}")]))
            while True:
                message = await read_message(reader, decoder, buffered)
                if message.is_response:
                    break
                events.append(message)
            got = {k: v for k, v in message.headers if k != "ActionID"}
            assert got == expected or (n == 0 and got["Response"] == "Success"), (action, headers, got)
        changes = [e for e in events if e.name in ("DeviceStateChange", "PresenceStateChange")]
        assert len(changes) == len(SETVAR_EVENTS)
        assert [{k: e.get(k) for k in want} for e, want in zip(changes, SETVAR_EVENTS, strict=True)] == SETVAR_EVENTS
    finally:
        writer.close()
        await sim.stop()


def test_setvar_needs_the_call_write_class() -> None:
    from pbxsync.plugin.ami.sim_actions import ACTIONS

    assert ACTIONS["setvar"].classes == frozenset({"call"})
    assert ACTIONS["getvar"].classes == frozenset({"call", "reporting"})
