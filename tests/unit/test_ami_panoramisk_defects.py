"""Pins the panoramisk 1.4 defects that made plugin/ami write its own client (see plugin/ami/client.py).

If a panoramisk release fixes one of these, the matching test fails and the workaround can be revisited.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from panoramisk import actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message


async def test_originate_without_async_crashes_action_bookkeeping() -> None:
    action = actions.Action({"Action": "Originate", "Channel": "PJSIP/101"})
    with pytest.raises(KeyError):
        action.add_message(Message({"Response": "Success", "Message": "Originate successfully queued"}))


async def test_split_utf8_is_silently_dropped() -> None:
    proto: Any = AMIProtocol()
    proto.connection_made(transport=None)
    seen: list[Any] = []

    class Factory:
        save_stream = None
        forgetable_actions = ()

        def dispatch(self, message: Any) -> None:
            seen.append(message)

    proto.factory = Factory()
    proto.encoding = "utf-8"
    raw = "Event: X\r\nName: Jürgen\r\n\r\n".encode()
    cut = raw.index("ü".encode()) + 1
    proto.data_received(raw[:cut])
    proto.data_received(raw[cut:])
    assert seen[0]["Name"] == "Jrgen"


async def test_actions_are_serialised_sorted_and_unchecked() -> None:
    text = str(actions.Action({"Action": "Originate", "CallerID": "x\r\nAction: Hangup", "ActionID": "1"}))
    assert "\r\nAction: Hangup\r\n" in text  # the CR/LF went straight onto the wire


async def test_unanswered_originate_is_queued_for_replay_on_close() -> None:
    proto: Any = AMIProtocol()

    class Transport:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    proto.connection_made(Transport())

    class Factory:
        forgetable_actions = ("ping", "login")
        awaiting_actions: ClassVar[list[Any]] = []

    proto.factory = Factory()
    proto.send({"Action": "Originate", "Channel": "PJSIP/101", "Async": "true"})
    proto.close()
    assert [a["Action"] for a in Factory.awaiting_actions] == ["Originate"]
    await asyncio.sleep(0)
