"""The pre-start check: `[autocall] verify_before_seconds` ahead of an AUTOCALL meeting, the daemon syncs the
organizer's calendar once more, so a cancellation made after the last sync pass stops the calls; a check
that fails changes nothing (the calls go out as booked).

The daemon runs in-process against the EWS and AMI simulators with the sync timer and change notifications
off: the only passes are the first one (made by the test) and the pre-start one. The daemon's clock is a
FakeClock: the test moves it to the check, waits for the check's pass (over HTTP to the simulator,
polled), then moves it past the start. (With notifications on, the cancellation itself would start a
pass at once: tests/integration/test_notified_sync.py.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, SimUser
from pbxsync.plugin.booking.model import StoredState
from pbxsync.plugin.booking.store import booking_by_id, list_bookings
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.parts import AutocallAdapter
from pbxsync.plugin.daemon.sync_timers import SyncService
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Fault, Organisation

LEAD = 8  # seconds from the first sync to the start
VERIFY_BEFORE = 5


def organisation(start: datetime) -> Organisation:
    return Organisation.from_dict({
        "domain": "example.com",
        "users": [
            {"email": "alice@example.com", "name": "Alice Example", "password": "alice-pw"},
            {"email": "bob@example.com", "name": "Bob Builder", "password": "bob-pw"},
            {"email": "svc-pbx@example.com", "name": "PBX service", "password": "svc-pw", "can_impersonate": True},
        ],
        "meetings": [
            {"uid": "late-cancel", "subject": "Stand-up", "location": "PBX AUTOCALL",
             "organizer": {"email": "alice@example.com", "name": "Alice Example"},
             "attendees": [{"email": "bob@example.com", "name": "Bob Builder", "response": "accept"}],
             "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration_minutes": 30, "timezone": "UTC"},
        ],
    }, source="prestart-test")


def make_config(tmp_path: Path, ews: EwsSimulator, ami_port: int) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": "svc-pbx@example.com",
                     "password": "svc-pw", "notifications": "off"},
        "sync": {"interval_minutes": 0},
        "users": [{"extension": "101", "email": "alice@example.com", "room": "8001"},
                  {"extension": "102", "email": "bob@example.com"}],
        "pbx": {"port": ami_port, "username": "pbxsync", "secret": "ami-secret"},
        "autocall": {"verify_before_seconds": VERIFY_BEFORE, "retries": 0},
        "agi": {"enabled": False}, "ldap": {"enabled": False},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
    }, str(tmp_path / "pbxsync.toml"))


@pytest.fixture
def start() -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=LEAD + 1)).replace(microsecond=0)


@pytest.fixture
def clock(start: datetime) -> FakeClock:
    return FakeClock(start - timedelta(seconds=LEAD + 1))


@pytest.fixture
def ews(start: datetime) -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation(start)) as sim:
        yield sim


@pytest.fixture
async def ami() -> AsyncIterator[AsteriskSimulator]:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "ami-secret", frozenset({"call", "system"}),
                                           frozenset({"originate", "call", "reporting"}))],
                            phones=[Phone("101"), Phone("102")], login_fail_delay=0.0)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def daemon(tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator,
                 clock: FakeClock) -> AsyncIterator[Daemon]:
    d = Daemon(make_config(tmp_path, ews, ami.port), clock=clock, stop_timeout=5.0)
    await d.start()
    yield d
    await d.shutdown()


async def booked(daemon: Daemon) -> int:
    summary = await daemon.sync_now(None)
    assert all(u.ok for u in summary.users)
    (booking,) = await list_bookings(daemon.store, daemon.clock.now())
    assert booking.draft.state is StoredState.SCHEDULED and booking.draft.autocall
    return booking.id


async def until(predicate: Callable[[], bool], deadline: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.01)  # polling interval, not a wait for an outcome


async def check_before_the_start(daemon: Daemon, clock: FakeClock, start: datetime) -> None:
    """Move the clock to the pre-start check and wait until its sync pass (and the hooks after it) is done."""
    sync = daemon.supervisor.service("sync")
    assert isinstance(sync, SyncService)
    passes = sync.passes
    clock.set(start - timedelta(seconds=VERIFY_BEFORE))
    await until(lambda: sync.passes > passes)


def autocall(daemon: Daemon) -> AutocallAdapter:
    adapter = daemon.supervisor.service("autocall")
    assert isinstance(adapter, AutocallAdapter)
    return adapter


async def state_of(daemon: Daemon, booking_id: int) -> StoredState:
    booking = await booking_by_id(daemon.store, booking_id)
    assert booking is not None
    return booking.draft.state


async def test_a_cancellation_after_the_last_pass_is_seen_before_anybody_is_called(
        daemon: Daemon, ews: EwsSimulator, ami: AsteriskSimulator, start: datetime, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pbxsync.autocall")
    booking_id = await booked(daemon)
    ews.org.cancel_meeting("late-cancel")  # no timed pass will come before the start
    alice_before = ews.org.counters.get("SyncFolderItems", "alice@example.com")
    bob_before = ews.org.counters.get("SyncFolderItems", "bob@example.com")
    assert autocall(daemon).health().data["scheduled_jobs"] == 1
    await check_before_the_start(daemon, clock, start)
    clock.set(start + timedelta(seconds=2))
    assert await state_of(daemon, booking_id) is StoredState.CANCELLED
    assert autocall(daemon).health().data["scheduled_jobs"] == 0 and clock.sleepers == 0  # nothing to ring
    await asyncio.sleep(0)
    assert ami.originates == []
    assert ews.org.counters.get("SyncFolderItems", "alice@example.com") > alice_before  # the organizer's box
    assert ews.org.counters.get("SyncFolderItems", "bob@example.com") == bob_before  # hers is the truth
    assert "checking Exchange for late changes" in caplog.text


async def test_a_failed_check_changes_nothing(
        daemon: Daemon, ews: EwsSimulator, ami: AsteriskSimulator, start: datetime, clock: FakeClock) -> None:
    booking_id = await booked(daemon)
    ews.org.cancel_meeting("late-cancel")
    ews.org.inject_fault(Fault("access_denied"), times=-1)  # the check fails: pbxsync cannot know, so it calls
    await check_before_the_start(daemon, clock, start)
    clock.set(start + timedelta(seconds=2))
    await until(lambda: len(ami.originates) == 2)
    assert await state_of(daemon, booking_id) is StoredState.SCHEDULED
    assert sorted(o.get("Channel") for o in ami.originates) == ["PJSIP/101", "PJSIP/102"]
