"""AUTOCALL end to end against the AMI simulator: schedule, calls, retries, cancel, restart, hostile data.

AUTOCALL runs on a FakeClock: a test moves it to a meeting's start or past a pacing gap by hand. Only the
peers (the simulated phones, the AMI link) take real time, which `until` polls for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, Member, Phone, PhoneBehaviour, SimUser
from pbxsync.plugin.ami.wire import AmiDecoder
from pbxsync.plugin.autocall.planner import PlannerSettings
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.autocall.store import call_states, load_attempts
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
from pbxsync.plugin.daemon.clock import Clock, FakeClock
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store
from tests.support.metrics import sample

PHONES = [Phone("101"), Phone("102"), Phone("103"), Phone("199", PhoneBehaviour.BUSY),
          Phone("198", PhoneBehaviour.NO_ANSWER), Phone("197", PhoneBehaviour.CONGESTION)]


async def until(predicate: Callable[[], bool], deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    s = AsteriskSimulator(phones=PHONES, time_scale=1.0,
                          users=[SimUser("pbxsync", "s3cret", frozenset({"call", "system"}),
                                         frozenset({"originate", "call", "reporting"}))])
    await s.start()
    yield s
    await s.stop()


def draft(extensions: Sequence[str], start: datetime, *, subject: str = "Weekly sync", room: str = "8001",
          minutes: int = 30) -> BookingDraft:
    people = tuple(Participant(ext, f"u{ext}@example.com", f"User {ext}", Role.HOST if i == 0 else Role.REQUIRED,
                               "organizer" if i == 0 else "accept") for i, ext in enumerate(extensions))
    return BookingDraft(f"uid-{subject[:20]}-{start.timestamp()}", "", subject, "PBX AUTOCALL", start,
                        start + timedelta(minutes=minutes), "UTC", True, StoredState.SCHEDULED, None, room,
                        people[0].email, people[0].extension, True, people)


async def book(store: Store, d: BookingDraft) -> Booking:
    (booking_id,) = await apply_actions(store, [BookingAction(ActionKind.CREATE, None, d, ("test",))], now())
    found = await booking_by_id(store, booking_id)
    assert found is not None
    return found


async def update(store: Store, booking: Booking, d: BookingDraft) -> None:
    await apply_actions(store, [BookingAction(ActionKind.UPDATE, booking.id, d, ("test",))], now())


class Agent:
    """An AMI client plus the AUTOCALL service, as the daemon wires them (on the system clock if none given)."""

    def __init__(self, sim: AsteriskSimulator, store: Store, clock: Clock | None = None, **settings: object) -> None:
        self.ami = AmiClient(AmiSettings(port=sim.port, username="pbxsync", secret=Secret("s3cret"),
                                         action_timeout=2.0, backoff_initial=0.01, backoff_max=0.05))
        base: dict[str, object] = dict(
            planner=PlannerSettings(retries=1, retry_delay=timedelta(0), grace=timedelta(minutes=10),
                                    ring_timeout=timedelta(seconds=0.2)),
            reconnect_wait=0.05)
        base.update(settings)
        self.service = AutocallService(store, self.ami, AutocallSettings(**base),  # type: ignore[arg-type]
                                       clock=clock)

    async def start(self) -> None:
        self.ami.start()
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
        await self.ami.stop()


def originated(sim: AsteriskSimulator) -> list[tuple[str, str]]:
    return [(o.get("Channel"), o.get("ChannelId")) for o in sim.originates]


def in_room(sim: AsteriskSimulator, room: str = "8001") -> set[str]:
    return {m.channel.split("/")[1].split("-")[0] for m in sim.members(room)}


async def test_meeting_starting_ahead_calls_everyone_retries_busy_then_gives_up(
        sim: AsteriskSimulator, store: Store, agents: list[Agent], clock: FakeClock) -> None:
    booking = await book(store, draft(["101", "102", "199"], clock.now() + timedelta(seconds=0.3)))
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    assert agent.service.health().scheduled_jobs == 1
    await asyncio.sleep(0)
    assert agent.service.health().running_bookings == 0 and sim.originates == []  # not before the start
    clock.advance(0.3)
    await until(lambda: in_room(sim) == {"101", "102"} and len(sim.originates) == 4)
    await until(lambda: not agent.service.health().running_bookings)
    by_channel = [o.get("Channel") for o in sim.originates]
    assert sorted(by_channel) == ["PJSIP/101", "PJSIP/102", "PJSIP/199", "PJSIP/199"]
    host = next(o for o in sim.originates if o.get("Channel") == "PJSIP/101")
    assert host.get_all("Variable") == ["PBXSYNC_ROOM=8001", "PBXSYNC_ROLE=host", "PBXSYNC_CONFIRM=0"]
    assert host.get("CallerID") == "Weekly sync <8001>" and host.get("Async") == "true"
    assert host.get("Context") == "pbxsync-autocall" and host.get("Timeout") == "200"
    assert [m.admin for m in sim.members("8001") if m.channel.startswith("PJSIP/101")] == [True]
    assert len({o.get("ChannelId") for o in sim.originates}) == 4
    states = await call_states(store, [booking.id])
    assert {ext: (s.outcome, s.attempts, s.joined) for (_, ext), s in states.items()} == {
        "101": ("answered", 1, True), "102": ("answered", 1, True), "199": ("busy", 2, False)}


async def test_no_answer_and_congestion_recorded(sim: AsteriskSimulator, store: Store, agents: list[Agent],
                                                 clock: FakeClock) -> None:
    booking = await book(store, draft(["101", "198", "197", "555"], clock.now() - timedelta(seconds=1)))
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    await until(lambda: not agent.service.health().running_bookings and len(sim.originates) == 6)
    states = await call_states(store, [booking.id])
    assert {ext: (s.outcome, s.attempts) for (_, ext), s in states.items()} == {
        "101": ("answered", 1), "198": ("no_answer", 2), "197": ("congestion", 2), "555": ("failed", 1)}


async def test_cancelled_before_start_causes_no_call(sim: AsteriskSimulator, store: Store,
                                                     agents: list[Agent], clock: FakeClock) -> None:
    start = clock.now() + timedelta(seconds=0.5)
    d = draft(["101", "102"], start)
    booking = await book(store, d)
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    assert agent.service.health().scheduled_jobs == 1
    await update(store, booking, replace(d, state=StoredState.CANCELLED, reason="cancelled by organizer"))
    await agent.service.reconcile([booking.id])
    assert agent.service.health().scheduled_jobs == 0
    clock.set(start + timedelta(seconds=0.3))
    assert clock.sleepers == 0  # nothing of AUTOCALL waits to call anybody
    assert await agent.ami.wait_connected(5.0)  # the link (real time) is up: a call would have been sent on it
    await agent.ami.ping()
    assert agent.service.health().running_bookings == 0
    assert sim.originates == []


async def test_moved_booking_moves_its_job(sim: AsteriskSimulator, store: Store, agents: list[Agent],
                                           clock: FakeClock) -> None:
    d = draft(["101"], clock.now() + timedelta(hours=1))
    booking = await book(store, d)
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    assert agent.service.alarms.pending() == {f"autocall-{booking.id}": d.start.replace(microsecond=0)}
    moved = replace(d, start=d.start + timedelta(hours=2), end=d.end + timedelta(hours=2))
    await update(store, booking, moved)
    await agent.service.reconcile([booking.id])
    assert agent.service.alarms.pending() == {f"autocall-{booking.id}": moved.start.replace(microsecond=0)}
    clock.set(d.start)  # the old start passes: nobody is called
    await asyncio.sleep(0)
    assert agent.service.health().running_bookings == 0 and agent.service.health().scheduled_jobs == 1


async def test_restart_mid_meeting_never_calls_twice(sim: AsteriskSimulator, store: Store,
                                                     agents: list[Agent], clock: FakeClock) -> None:
    sim.phones["198"].behaviour = PhoneBehaviour.NO_ANSWER
    booking = await book(store, draft(["101", "102", "198"], clock.now() - timedelta(seconds=1)))
    slow = PlannerSettings(retries=2, retry_delay=timedelta(hours=1), grace=timedelta(minutes=10),
                           ring_timeout=timedelta(seconds=30))
    first = Agent(sim, store, clock, planner=slow)
    await first.start()
    await until(lambda: in_room(sim) == {"101", "102"} and len(sim.originates) == 3)
    await first.stop()  # "killed" while 198 still rings
    second = Agent(sim, store, clock, planner=slow)
    agents.append(second)
    await second.start()
    await second.ami.wait_connected(5.0)
    expected = {"101": ("answered", 1, True), "102": ("answered", 1, True), "198": ("unknown", 1, False)}
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while True:  # the second agent records the joins it finds in ConfbridgeList
        states = await call_states(store, [booking.id])
        got = {ext: (st.outcome, st.attempts, st.joined) for (_, ext), st in states.items()}
        if got == expected or loop.time() > end:
            break
        await asyncio.sleep(0.01)
    assert got == expected
    await second.ami.ping()
    assert len(sim.originates) == 3
    assert len({o.get("ChannelId") for o in sim.originates}) == 3


async def test_participant_already_in_room_is_not_called(sim: AsteriskSimulator, store: Store,
                                                         agents: list[Agent], clock: FakeClock) -> None:
    sim.add_member("8001", Member("PJSIP/102-00000001", "1.1", "102", "Bob", "from-internal", "8001", "4"))
    await book(store, draft(["101", "102"], clock.now() - timedelta(seconds=1)))
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    await until(lambda: not agent.service.health().running_bookings and len(sim.originates) == 1)
    assert [o.get("Channel") for o in sim.originates] == ["PJSIP/101"]


async def test_ami_down_at_start_still_called_within_grace(sim: AsteriskSimulator, store: Store,
                                                           agents: list[Agent], clock: FakeClock) -> None:
    port = sim.port
    await sim.stop()
    await book(store, draft(["101"], clock.now() - timedelta(seconds=1)))
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    await until(lambda: agent.service.health().running_bookings == 1)
    await sim.start(port=port)
    await until(lambda: in_room(sim) == {"101"})
    assert len(sim.originates) == 1


async def test_cancel_while_running_stops_calls_and_ends_conference(sim: AsteriskSimulator, store: Store,
                                                                    agents: list[Agent], clock: FakeClock) -> None:
    d = draft(["101", "199"], clock.now() - timedelta(seconds=1))
    booking = await book(store, d)
    agent = Agent(sim, store, clock, end_conference_on_cancel=True,
                  planner=PlannerSettings(retries=5, retry_delay=timedelta(hours=1), ring_timeout=timedelta(seconds=1)))
    agents.append(agent)
    await agent.start()
    await until(lambda: in_room(sim) == {"101"} and len(sim.originates) == 2)
    await update(store, booking, replace(d, state=StoredState.CANCELLED, reason="cancelled"))
    await agent.service.reconcile([booking.id])
    await until(lambda: "8001" not in sim.rooms)
    assert agent.service.health().running_bookings == 0
    assert len(sim.originates) == 2


async def test_cancel_while_ringing_hangs_up_the_ringing_call(sim: AsteriskSimulator, store: Store,
                                                              agents: list[Agent], clock: FakeClock) -> None:
    d = draft(["101", "198"], clock.now() - timedelta(seconds=1))
    booking = await book(store, d)
    agent = Agent(sim, store, clock, planner=PlannerSettings(retries=5, retry_delay=timedelta(0),
                                                      ring_timeout=timedelta(seconds=30)))
    agents.append(agent)
    await agent.start()
    await until(lambda: in_room(sim) == {"101"} and any("/198-" in c for c in sim.ringing))
    await update(store, booking, replace(d, state=StoredState.CANCELLED, reason="cancelled"))
    await agent.service.reconcile([booking.id])
    await until(lambda: not sim.ringing and not agent.service.health().calls_in_flight, deadline=3.0)
    states = await call_states(store, [booking.id])
    assert {ext: (s.outcome, s.attempts) for (_, ext), s in states.items()} == {
        "101": ("answered", 1), "198": ("cancelled", 1)}
    assert len(sim.originates) == 2 and in_room(sim) == {"101"}  # nobody redialled; the room stays
    # Booked again (e.g. the organizer restored it): the hung-up call was not a try, 198 is called again.
    await update(store, booking, d)
    await agent.service.reconcile([booking.id])
    await until(lambda: len(sim.originates) == 3 and any("/198-" in c for c in sim.ringing))
    assert sim.originates[-1].get("Channel") == "PJSIP/198"


HOSTILE_SUBJECTS = ['Board "x" <y>, z; ${SHELL(rm -rf /)}\r\nAction: Hangup\r\nChannel: all', "A" * 100_000,
                    "\x00nul\x00", "comma,separated&more|pipe'quote"]


@pytest.mark.parametrize("subject", HOSTILE_SUBJECTS)
async def test_hostile_subject_reaches_the_wire_neutralised(sim: AsteriskSimulator, store: Store, agents: list[Agent],
                                                            subject: str, clock: FakeClock) -> None:
    await book(store, draft(["101"], clock.now() - timedelta(seconds=1), subject=subject))
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    await until(lambda: in_room(sim) == {"101"})
    wire = sim.received_bytes()
    messages = AmiDecoder(expect_banner=False).feed(wire)
    assert [m.get("Action") for m in messages if m.get("Action") not in ("Login", "ConfbridgeList", "Ping")] == [
        "Originate"]
    (orig,) = sim.originates
    caller = orig.get("CallerID")
    assert caller.endswith(" <8001>") and len(caller) <= 48
    for bad in ('"', "$", "{", ",", "&", "|", "'", ";", "\x00"):
        assert bad not in caller
    assert b"Hangup" not in wire and b"\x00" not in wire and len(wire) < 4000


@pytest.mark.parametrize("extension", ["101&PJSIP/666", "101,tT", "${EXTEN}", "10\r\n1", "1" * 100_000, '10"1'])
async def test_hostile_extension_is_never_dialled(sim: AsteriskSimulator, store: Store, agents: list[Agent],
                                                  extension: str, clock: FakeClock) -> None:
    booking = await book(store, draft(["101", extension], clock.now() - timedelta(seconds=1)))
    agent = Agent(sim, store, clock)
    agents.append(agent)
    await agent.start()
    await until(lambda: not agent.service.health().running_bookings and in_room(sim) == {"101"})
    assert [o.get("Channel") for o in sim.originates] == ["PJSIP/101"]
    wire = sim.received_bytes()
    assert b"PJSIP/666" not in wire and b"EXTEN" not in wire and b",tT" not in wire and b'10"1' not in wire
    attempts = await load_attempts(store, booking.id)
    assert sorted(a.outcome.value for a in attempts) == ["answered", "failed"]



async def test_confirm_and_pacing(sim: AsteriskSimulator, store: Store, agents: list[Agent], clock: FakeClock) -> None:
    sim.phones["102"] = Phone("102", presses_confirm=False)  # e.g. a voicemail box answering
    await book(store, draft(["101", "102", "103"], clock.now() - timedelta(seconds=1)))
    agent = Agent(sim, store, clock, confirm=True, pacing_per_second=50.0)
    agents.append(agent)
    await agent.start()
    for _ in range(2):  # 1/50 s between two calls, on the clock
        await clock.wait_for_sleepers(1)
        clock.advance(0.02)
    await until(lambda: in_room(sim) == {"101", "103"} and len(sim.originates) == 3)
    assert all(o.get_all("Variable")[-1] == "PBXSYNC_CONFIRM=1" for o in sim.originates)
    assert [o.get("Channel") for o in sim.originates] == ["PJSIP/101", "PJSIP/102", "PJSIP/103"]  # host first


async def test_autocall_counts_calls_by_outcome_and_the_first_originates_skew(sim: AsteriskSimulator,
                                                                             store: Store) -> None:
    calls = {o: sample("pbxsync_calls_total", outcome=o) for o in ("answered", "busy")}
    skews = sample("pbxsync_call_start_skew_seconds_count")
    skew_sum = sample("pbxsync_call_start_skew_seconds_sum")
    start = datetime.now(UTC) - timedelta(seconds=2)  # already running: the first call is >= 2 s late
    await book(store, draft(["101", "199"], start))
    agent = Agent(sim, store)
    await agent.start()
    try:
        await until(lambda: len(sim.originates) == 3)  # 101 answers; 199 is busy, retried once
        await until(lambda: not agent.service.health().running_bookings)
    finally:
        await agent.stop()
    assert sample("pbxsync_calls_total", outcome="answered") == calls["answered"] + 1
    assert sample("pbxsync_calls_total", outcome="busy") == calls["busy"] + 2
    # one observation per booking (its first Originate), not one per call or retry: whether a call is the
    # first is read from the stored attempts, so a restarted agent does not observe it again either
    assert sample("pbxsync_call_start_skew_seconds_count") == skews + 1
    assert sample("pbxsync_call_start_skew_seconds_sum") - skew_sum >= 2.0
