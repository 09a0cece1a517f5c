"""AUTOCALL on the REAL Asterisk 22 (chroot from scripts/setup-asterisk.sh), with the shipped dialplan,
confbridge profiles and the least-privilege AMI classes (read=call,system; write=originate,call,reporting).

Local-channel phones from the harness: 1XX answer, 199 busy, 198 never answers. AUTOCALL runs on a
FakeClock (moved to a meeting's start or past a retry delay by hand); Asterisk takes real time, polled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.autocall.planner import PlannerSettings
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.autocall.store import call_states
from pbxsync.plugin.booking.model import (
    ActionKind,
    Booking,
    BookingAction,
    BookingDraft,
    Participant,
    Role,
    StoredState,
)
from pbxsync.plugin.booking.store import apply_actions, booking_by_id
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store

pytestmark = pytest.mark.asterisk
DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"


def now() -> datetime:
    return datetime.now(UTC)


async def until(predicate: Callable[[], Any], deadline: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.1)


@pytest.fixture
def pbx(asterisk_factory: Callable[..., Any]) -> Any:
    return asterisk_factory(dialplan_files=[DIALPLAN / "pbxsync-autocall.conf"],
                            confbridge_files=[DIALPLAN / "pbxsync-confbridge.conf"],
                            ami_read="call,system", ami_write="originate,call,reporting")


def draft(extensions: Sequence[str], start: datetime, room: str, subject: str = "Weekly sync") -> BookingDraft:
    people = tuple(Participant(ext, f"u{ext}@example.com", f"User {ext}", Role.HOST if i == 0 else Role.REQUIRED,
                               "organizer" if i == 0 else "accept") for i, ext in enumerate(extensions))
    return BookingDraft(f"uid-{room}-{start.timestamp()}", "", subject, "PBX AUTOCALL", start,
                        start + timedelta(minutes=30), "UTC", True, StoredState.SCHEDULED, None, room,
                        people[0].email, people[0].extension, True, people)


async def book(store: Store, d: BookingDraft) -> Booking:
    (booking_id,) = await apply_actions(store, [BookingAction(ActionKind.CREATE, None, d, ("test",))], now())
    found = await booking_by_id(store, booking_id)
    assert found is not None
    return found


class Agent:
    def __init__(self, pbx: Any, store: Store, clock: FakeClock, planner: PlannerSettings,
                 confirm: bool = False) -> None:
        self.ami = AmiClient(AmiSettings(host=pbx.host, port=pbx.port, username=pbx.user, secret=Secret(pbx.secret),
                                         action_timeout=5.0, backoff_initial=0.1, backoff_max=1.0))
        self.service = AutocallService(store, self.ami, AutocallSettings(
            dial_template="Local/{extension}@fake-phones", planner=planner, reconnect_wait=0.5, confirm=confirm),
            clock=clock)

    async def start(self) -> None:
        self.ami.start()
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
        await self.ami.stop()


async def members(pbx: Any, room: str) -> list[dict[str, str]]:
    async with pbx.ami() as ami:
        try:
            return list(await ami.action_list("ConfbridgeList", Conference=room))
        except Exception:
            return []


FAST = PlannerSettings(retries=1, retry_delay=timedelta(seconds=1), grace=timedelta(minutes=10),
                       ring_timeout=timedelta(seconds=4))


async def test_meeting_seconds_ahead_everyone_answering_joins_busy_retried_then_given_up(
        pbx: Any, store: Store, agents: list[Agent], clock: FakeClock) -> None:
    booking = await book(store, draft(["101", "102", "199"], clock.now() + timedelta(seconds=3), "8101",
                                      subject='Board "Q4" <review>, ${EXTEN}; & more'))
    agent = Agent(pbx, store, clock, FAST)
    agents.append(agent)
    await agent.start()
    assert agent.service.health().scheduled_jobs == 1
    clock.advance(3)

    async def busy_once() -> bool:
        states = await call_states(store, [booking.id])
        return any(ext == "199" and s.outcome == "busy" for (_, ext), s in states.items())

    await until(busy_once)
    clock.advance(FAST.retry_delay.total_seconds())  # the retry of 199 is due

    async def joined() -> bool:
        return {m.get("Uniqueid", "")[:30] for m in await members(pbx, "8101")} != set() and \
            len(await members(pbx, "8101")) == 2

    await until(joined)
    listed = await members(pbx, "8101")
    states = await call_states(store, [booking.id])
    await until(lambda: not agent.service.health().running_bookings)
    states = await call_states(store, [booking.id])
    assert {ext: (s.outcome, s.attempts) for (_, ext), s in states.items()} == {
        "101": ("answered", 1), "102": ("answered", 1), "199": ("busy", 2)}
    assert sorted(m["Channel"].split("-")[0] for m in listed) == ["Local/101@fake", "Local/102@fake"]
    host = next(m for m in listed if m["Channel"].startswith("Local/101@"))
    assert host["Admin"] == "Yes" and host["MarkedUser"] == "Yes"
    assert host["Uniqueid"].startswith(f"pbxsync-{booking.id}-")
    assert host["CallerIDName"] == "Board Q4 review EXTEN more"
    assert all(m["Context"] == "pbxsync-autocall" for m in listed)


async def test_cancelled_before_start_no_call(pbx: Any, store: Store, agents: list[Agent], clock: FakeClock) -> None:
    start = clock.now() + timedelta(seconds=2)
    d = draft(["103", "104"], start, "8102")
    booking = await book(store, d)
    agent = Agent(pbx, store, clock, FAST)
    agents.append(agent)
    await agent.start()
    await apply_actions(store, [BookingAction(ActionKind.UPDATE, booking.id,
                                              replace(d, state=StoredState.CANCELLED, reason="x"), ("test",))], now())
    await agent.service.reconcile([booking.id])
    assert agent.service.health().scheduled_jobs == 0
    clock.set(start + timedelta(seconds=2))
    assert clock.sleepers == 0  # nothing of AUTOCALL waits to call anybody
    async with pbx.ami() as ami:
        channels = await ami.action_list("CoreShowChannels")
    assert [c for c in channels if "103@" in c.get("Channel", "") or "104@" in c.get("Channel", "")] == []
    assert await call_states(store, [booking.id]) == {}


async def test_agent_restarted_mid_meeting_calls_nobody_twice(pbx: Any, store: Store, agents: list[Agent],
                                                              clock: FakeClock) -> None:
    slow = PlannerSettings(retries=2, retry_delay=timedelta(hours=1), grace=timedelta(minutes=10),
                           ring_timeout=timedelta(seconds=20))
    booking = await book(store, draft(["105", "106", "198"], clock.now() - timedelta(seconds=1), "8103"))
    first = Agent(pbx, store, clock, slow)
    await first.start()
    await until(lambda: _count(members(pbx, "8103"), 2))
    await first.stop()  # killed while 198 still rings
    async with pbx.ami() as watcher:
        second = Agent(pbx, store, clock, slow)
        agents.append(second)
        await second.start()
        assert await second.ami.wait_connected(10.0)
        # its job fired and its run planned and settled (105/106 in the room, 198 unknown: no retry yet)
        await until(lambda: second.service.health().scheduled_jobs == 0
                    and second.service.health().running_bookings == 0)
        await until(lambda: _joined_recorded(store, booking.id, {"105", "106"}))
        await second.ami.ping()
        states = await call_states(store, [booking.id])
        assert {ext: s.outcome for (_, ext), s in states.items()} == {
            "105": "answered", "106": "answered", "198": "unknown"}
        originated = [e for e in watcher.events if e.get("Event") == "OriginateResponse"]
        new_channels = [e for e in watcher.events if e.get("Event") == "Newchannel"
                        and any(f"/{x}@" in e.get("Channel", "") for x in ("105", "106", "198"))]
    assert originated == [] and new_channels == []
    assert len(await members(pbx, "8103")) == 2


async def _count(coro: Any, n: int) -> bool:
    return len(await coro) == n


async def _joined_recorded(store: Store, booking_id: int, extensions: set[str]) -> bool:
    states = await call_states(store, [booking_id])
    return {ext for (_, ext), s in states.items() if s.joined} == extensions


async def test_asterisk_restarted_before_start_is_survived(pbx: Any, store: Store, agents: list[Agent],
                                                          clock: FakeClock) -> None:
    agent = Agent(pbx, store, clock, FAST)
    agents.append(agent)
    await agent.start()
    assert await agent.ami.wait_connected(10.0)
    booking = await book(store, draft(["107", "108"], clock.now() + timedelta(seconds=4), "8104"))
    await agent.service.reconcile([booking.id])
    await asyncio.to_thread(pbx.restart)
    clock.advance(4)
    await until(lambda: _count(members(pbx, "8104"), 2), deadline=60.0)

    async def both_recorded() -> bool:  # a member can be in the room just before its OriginateResponse is stored
        return all(s.outcome != "pending" for s in (await call_states(store, [booking.id])).values())
    await until(both_recorded, deadline=10.0)
    states = await call_states(store, [booking.id])
    assert {ext: (s.outcome, s.attempts) for (_, ext), s in states.items()} == {
        "107": ("answered", 1), "108": ("answered", 1)}
    assert agent.ami.health().reconnects >= 1


async def test_hostile_extensions_dial_nothing_extra(pbx: Any, store: Store, agents: list[Agent],
                                                    clock: FakeClock) -> None:
    hostile = ["109&Local/110@fake-phones", "111,PBXSYNC_ROLE=host", "${EXTEN}", "112\r\nAction: Hangup"]
    booking = await book(store, draft(["113", *hostile], clock.now() - timedelta(seconds=1), "8105"))
    agent = Agent(pbx, store, clock, FAST)
    agents.append(agent)
    async with pbx.ami() as watcher:
        await agent.start()
        await until(lambda: _count(members(pbx, "8105"), 1))
        await until(lambda: not agent.service.health().running_bookings)
        await agent.ami.ping()
        dialled = sorted({e["Channel"].split("-")[0] for e in watcher.events
                          if e.get("Event") == "Newchannel" and e.get("Channel", "").startswith("Local/")})
    assert dialled == ["Local/113@fake"]
    (member,) = await members(pbx, "8105")
    assert member["Admin"] == "Yes"  # the host; nobody else was made host through a variable
    states = await call_states(store, [booking.id])
    assert sorted(s.outcome for s in states.values()) == ["answered", "failed", "failed", "failed", "failed"]


async def test_cancelled_while_ringing_hangs_up_the_ringing_call_only(pbx: Any, store: Store,
                                                                      agents: list[Agent], clock: FakeClock) -> None:
    slow = PlannerSettings(retries=2, retry_delay=timedelta(seconds=1), grace=timedelta(minutes=10),
                           ring_timeout=timedelta(seconds=60))
    d = draft(["114", "198"], clock.now() - timedelta(seconds=1), "8106")
    booking = await book(store, d)
    agent = Agent(pbx, store, clock, slow)
    agents.append(agent)
    await agent.start()
    await until(lambda: _count(members(pbx, "8106"), 1))

    async def ringing() -> list[dict[str, str]]:
        async with pbx.ami() as ami:
            return [c for c in await ami.action_list("CoreShowChannels") if "/198@" in c.get("Channel", "")]

    await until(lambda: _count(ringing(), 2))  # both halves of the Local channel to the phone that never answers
    async with pbx.ami() as watcher:
        await apply_actions(store, [BookingAction(ActionKind.UPDATE, booking.id,
                                                  replace(d, state=StoredState.CANCELLED, reason="x"), ("test",))],
                            now())
        await agent.service.reconcile([booking.id])
        await until(lambda: _count(ringing(), 0), deadline=10.0)
        await until(lambda: not agent.service.health().calls_in_flight, deadline=10.0)
        clock.advance(2.0)  # past the retry delay: nothing may dial 198 again
        assert clock.sleepers == 0  # nothing of AUTOCALL waits to call anybody
        await agent.ami.ping()
        redialled = [e for e in watcher.events if e.get("Event") == "Newchannel" and "/198@" in e.get("Channel", "")]
    assert redialled == []
    states = await call_states(store, [booking.id])
    assert {ext: (s.outcome, s.attempts) for (_, ext), s in states.items()} == {
        "114": ("answered", 1), "198": ("cancelled", 1)}
    assert len(await members(pbx, "8106")) == 1  # who is in the room stays (end_conference_on_cancel is off)


async def test_press_1_confirmation_lets_in_only_who_pressed_1(pbx: Any, store: Store, agents: list[Agent],
                                                              clock: FakeClock) -> None:
    booking = await book(store, draft(["171", "116"], clock.now() - timedelta(seconds=1), "8107"))
    agent = Agent(pbx, store, clock, FAST, confirm=True)
    agents.append(agent)
    async with pbx.ami() as watcher:
        await agent.start()
        await until(lambda: _count(members(pbx, "8107"), 1), deadline=20.0)

        async def declined_hung_up() -> bool:
            async with pbx.ami() as ami:
                return not [c for c in await ami.action_list("CoreShowChannels") if "/116@" in c.get("Channel", "")]

        await until(declined_hung_up, deadline=45.0)  # three prompts without a 1 (~25 s): hung up, never joined
        joins = [e for e in watcher.events if e.get("Event") == "ConfbridgeJoin"]
    (member,) = await members(pbx, "8107")
    assert member["Channel"].startswith("Local/171@fake-phones")
    assert [e["Channel"].split("-")[0] for e in joins] == ["Local/171@fake"]
    states = await call_states(store, [booking.id])
    assert {ext: s.outcome for (_, ext), s in states.items()} == {"171": "answered", "116": "answered"}
