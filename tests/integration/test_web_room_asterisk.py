"""The host's controls of a running conference against the REAL Asterisk 22 (shipped dialplan and
confbridge profiles, least-privilege AMI classes): who is in the room, mute and unmute, lock and unlock,
remove one member, call a participant again through AUTOCALL's path, end for everybody."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.autocall.store import call_states
from pbxsync.plugin.daemon.clock import SystemClock
from pbxsync.plugin.web.room import host_action, room_view
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store
from tests.support.asterisk_harness import AsteriskInstance
from tests.support.pbxsync_run import PHONES_CONTEXT, autocall_asterisk
from tests.support.web_employee import book, employee_config, meeting

pytestmark = pytest.mark.asterisk
ROOM = "8301"


@pytest.fixture
def pbx(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return autocall_asterisk(asterisk_factory)


async def until(check: Callable[[], Any], deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await check():
        assert loop.time() < end, "not reached before the deadline"
        await asyncio.sleep(0.1)  # polling the real PBX, not waiting for an outcome


async def test_host_controls_on_the_real_asterisk(pbx: AsteriskInstance, store: Store) -> None:
    clock = SystemClock()
    config = employee_config(pbx_port=pbx.port, dial=f"Local/{{extension}}@{PHONES_CONTEXT}")
    ami = AmiClient(AmiSettings(port=pbx.port, username=pbx.user, secret=Secret(pbx.secret), action_timeout=5.0,
                                backoff_initial=0.1))
    ami.start()
    try:
        assert await ami.wait_connected(15.0)
        booking = await book(store, meeting("102", ["101", "103"], clock.now() - timedelta(minutes=1), ROOM),
                             clock.now())
        for extension in ("102", "101"):  # two of them dialled in (the host and a guest)
            async with pbx.ami() as raw:
                await raw.action("Originate", Channel=f"Local/{extension}@{PHONES_CONTEXT}",
                                 Application="ConfBridge", Data=f"{ROOM},pbxsync_bridge,pbxsync_guest",
                                 CallerID=f"Caller {extension} <{extension}>", Async="true")

        async def both_in() -> bool:
            view = await room_view(ami, store, config, booking)
            return sorted(m.extension for m in view.members) == ["101", "102"]

        await until(both_in)
        view = await room_view(ami, store, config, booking)
        guest = next(m for m in view.members if m.extension == "101")

        async def act(action: str, target: str = "") -> str:
            result = await host_action(ami, store, config, clock, booking, action, target)
            assert result.ok, result.message
            return result.message

        assert await act("mute", guest.key) == "User 101 is muted."
        async def guest_muted() -> list[bool]:
            return [m.muted for m in (await room_view(ami, store, config, booking)).members if m.extension == "101"]

        assert await guest_muted() == [True]
        await act("unmute", guest.key)
        assert await guest_muted() == [False]
        await act("lock")
        await act("unlock")
        await act("kick", guest.key)

        async def only_host() -> bool:
            return [m.extension for m in (await room_view(ami, store, config, booking)).members] == ["102"]

        await until(only_host)
        assert await act("call", "103") == "Calling User 103 again."

        async def carol_in() -> bool:
            states = await call_states(store, [booking.id])
            state = states.get((booking.id, "103"))
            return state is not None and state.outcome == "answered"

        await until(carol_in)
        await act("end")

        async def empty() -> bool:
            return (await room_view(ami, store, config, booking)).members == ()

        await until(empty)
    finally:
        await ami.stop()
