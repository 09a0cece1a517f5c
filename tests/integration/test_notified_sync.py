"""Notifications in the daemon: a change in Exchange is synced by the NORMAL pass of its folder, debounced,
with the after-pass hooks of a timed pass (bookings, LDAP refresh, AUTOCALL re-arm).

The daemon runs in-process on a FakeClock against the EWS simulator (streaming over real HTTP) and the AMI
simulator (tests/integration/conftest.py's), with the sync timer OFF: every pass seen here was caused by a
notification. The clock moves the debounce and retry timers; the HTTP work is awaited by polling with a
deadline.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin import metrics
from pbxsync.plugin.ami.simulator import AsteriskSimulator
from pbxsync.plugin.booking.model import StoredState
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.commands.status import print_status
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.notified_sync import NotifiedSync
from pbxsync.plugin.daemon.sync_timers import SyncService
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Fault, Organisation
from pbxsync.sync.store.contacts import list_contacts
from tests.support.waiting import until

ALICE, BOB = "alice@example.com", "bob@example.com"
T0 = datetime.now(UTC).replace(microsecond=0)


def organisation() -> Organisation:
    return Organisation.from_dict({
        "domain": "example.com",
        "users": [{"email": ALICE, "name": "Alice Example", "password": "a"},
                  {"email": BOB, "name": "Bob Builder", "password": "b"},
                  {"email": "svc-pbx@example.com", "name": "PBX", "password": "svc-pw", "can_impersonate": True}],
        "meetings": [{"uid": "weekly", "subject": "Weekly", "location": "PBX",
                      "organizer": {"email": ALICE, "name": "Alice Example"},
                      "attendees": [{"email": BOB, "name": "Bob Builder", "response": "accept"}],
                      "start": (T0 + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "duration_minutes": 30, "timezone": "UTC"}],
    }, source="notified-sync-test")


def make_config(tmp_path: Path, ews: EwsSimulator, ami_port: int) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": "svc-pbx@example.com",
                     "password": "svc-pw"},
        "sync": {"interval_minutes": 0, "fallback_interval_minutes": 15},
        "users": [{"extension": "101", "email": ALICE, "room": "8001"}, {"extension": "102", "email": BOB}],
        "pbx": {"port": ami_port, "username": "pbxsync", "secret": "ami-secret"},
        "agi": {"enabled": False}, "ldap": {"listen": "127.0.0.1:0", "refresh_seconds": 0},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
    }, str(tmp_path / "pbxsync.toml"))


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def daemon(tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator, clock: FakeClock) -> AsyncIterator[Daemon]:
    d = Daemon(make_config(tmp_path, ews, ami.port), clock=clock, stop_timeout=5.0)
    await d.start()
    yield d
    await d.shutdown()


def sync_service(daemon: Daemon) -> SyncService:
    service = daemon.supervisor.service("sync")
    assert isinstance(service, SyncService)
    return service


def notified(daemon: Daemon) -> NotifiedSync:
    feed = sync_service(daemon).notifications
    assert feed is not None, "the EWS backend brings a change feed"
    return feed


async def settled(daemon: Daemon, clock: FakeClock) -> None:
    """Wait for the feed's first subscriptions and the catch-up pass they cause (every folder once)."""
    sync, feed = sync_service(daemon), notified(daemon)
    await until(lambda: feed.health().subscriptions_healthy == 2 and len(feed.debouncer) == 4)
    clock.advance(3)
    await until(lambda: sync.passes == 1 and sync._running == 0)


async def pass_for(daemon: Daemon, clock: FakeClock, events: int, seconds: float = 1.0) -> None:
    """Wait until `events` more folder events reached the debouncer, then let it fire one pass."""
    sync = sync_service(daemon)
    passes = sync.passes
    await until(lambda: len(notified(daemon).debouncer) >= 1 and _events() >= events)
    clock.advance(seconds)
    await until(lambda: sync.passes > passes and sync._running == 0)


_seen = [0.0]


def _events() -> float:
    return metrics.NOTIFICATIONS.labels("event")._value.get() - _seen[0]


@pytest.fixture(autouse=True)
def count_events_from_here() -> None:
    _seen[0] = metrics.NOTIFICATIONS.labels("event")._value.get()


async def test_a_contact_added_in_exchange_reaches_the_store_and_the_phonebook_by_a_notified_pass(
        daemon: Daemon, ews: EwsSimulator, clock: FakeClock) -> None:
    await settled(daemon, clock)
    sync = sync_service(daemon)
    ldap = daemon.supervisor.service("ldap")
    assert ldap is not None and ldap.health().data["contacts"] == 0
    lag = metrics.NOTIFICATION_LAG.labels("ews-streaming")
    observed = sum(b.get() for b in lag._buckets)  # type: ignore[attr-defined]
    ews.org.add_contact(ALICE, ContactRecord("", "", "Dana Newcomer", emails=("dana@example.org",)))
    await pass_for(daemon, clock, events=1)
    assert [c.contact.display_name for c in await list_contacts(daemon.store, ALICE)] == ["Dana Newcomer"]
    assert sync.last_pass is not None and sync.last_pass["trigger"] == "notify"
    assert sync.last_pass["users"] == 1  # only alice's contacts folder was synced
    await until(lambda: ldap.health().data["contacts"] == 1)  # the LDAP hook ran after the pass
    assert sum(b.get() for b in lag._buckets) == observed + 1  # type: ignore[attr-defined]


async def test_a_burst_of_changes_to_one_folder_is_one_pass(daemon: Daemon, ews: EwsSimulator,
                                                          clock: FakeClock) -> None:
    await settled(daemon, clock)
    before = ews.org.counters.get("SyncFolderItems", ALICE)
    sync = sync_service(daemon)
    passes = sync.passes
    for index in range(5):
        ews.org.add_contact(ALICE, ContactRecord("", "", f"Person {index}"))
    await pass_for(daemon, clock, events=5)
    assert sync.passes == passes + 1
    assert ews.org.counters.get("SyncFolderItems", ALICE) == before + 1  # the contacts folder, once
    assert len(await list_contacts(daemon.store, ALICE)) == 5


async def test_a_cancelled_meeting_cancels_its_booking_at_once(daemon: Daemon, ews: EwsSimulator,
                                                             clock: FakeClock) -> None:
    await settled(daemon, clock)
    (booking,) = await list_bookings(daemon.store, clock.now())
    assert booking.draft.state is StoredState.SCHEDULED
    ews.org.cancel_meeting("weekly")  # alice's copy is deleted, bob's marked cancelled: two events
    await pass_for(daemon, clock, events=2)
    assert await list_bookings(daemon.store, clock.now()) == []  # gone from `conferences`
    (booking,) = await list_bookings(daemon.store, clock.now(), include_all=True)
    assert booking.draft.state is StoredState.CANCELLED


async def test_a_failed_notified_pass_is_tried_again(daemon: Daemon, ews: EwsSimulator, clock: FakeClock) -> None:
    await settled(daemon, clock)
    ews.org.inject_fault(Fault("access_denied"), operation="SyncFolderItems", mailbox=BOB, times=1)
    ews.org.add_contact(BOB, ContactRecord("", "", "Eve Retry"))
    await pass_for(daemon, clock, events=1)
    assert await list_contacts(daemon.store, BOB) == []  # the pass failed: nothing changed
    await until(lambda: notified(daemon).debouncer.next_due() == clock.now() + timedelta(seconds=30))
    sync = sync_service(daemon)
    passes = sync.passes
    clock.advance(30)
    await until(lambda: sync.passes > passes and sync._running == 0)
    assert [c.contact.display_name for c in await list_contacts(daemon.store, BOB)] == ["Eve Retry"]


async def test_folders_on_fallback_are_polled_every_fallback_interval_and_status_says_so(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator, clock: FakeClock) -> None:
    ews.streaming.max_subscriptions = 0  # Exchange refuses every subscription (EWSMaxSubscriptions)
    d = Daemon(make_config(tmp_path, ews, ami.port), clock=clock, stop_timeout=5.0)
    await d.start()
    try:
        feed = notified(d)
        for back_off in (1, 2):  # three failures in a row: timed polling
            await until(lambda: clock.next_wakeup() == clock.now() + timedelta(seconds=back_off))  # noqa: B023
            clock.advance(back_off)
        await until(lambda: len(feed.health().fallback_folders) == 4)
        before = ews.org.counters.get("SyncFolderItems", ALICE)
        clock.advance(15 * 60 - 3)  # [sync] fallback_interval_minutes after the start: its folders are due
        await until(lambda: len(feed.debouncer) == 4)
        clock.advance(1)  # (through the debouncer, like every notification)
        sync = sync_service(d)
        await until(lambda: sync.passes == 1 and sync._running == 0)
        assert ews.org.counters.get("SyncFolderItems", ALICE) == before + 2  # both of alice's folders
        assert sync.last_pass is not None and sync.last_pass["trigger"] == "notify"
        status = d.status()
        (sync_status,) = [s for s in status["services"] if s["name"] == "sync"]
        data = sync_status["data"]["notifications"]
        assert data["mode"] == "ews-streaming" and data["subscriptions_healthy"] == 0
        assert sorted(data["fallback_folders"]) == ["alice@example.com/calendar", "alice@example.com/contacts",
                                                    "bob@example.com/calendar", "bob@example.com/contacts"]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            print_status(status)
        text = printed.getvalue()
        assert "notifications: ews-streaming, 0/2 subscriptions healthy" in text
        assert "EWSMaxSubscriptions" in text and "on timed polling" in text and "bob@example.com/contacts" in text
    finally:
        await d.shutdown()


async def test_notifications_off_means_timed_passes_only(tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator,
                                                         clock: FakeClock) -> None:
    config = make_config(tmp_path, ews, ami.port)
    from dataclasses import replace

    config = replace(config, exchange=replace(config.exchange, notifications="off"))
    d = Daemon(config, clock=clock, stop_timeout=5.0)
    await d.start()
    try:
        assert sync_service(d).notifications is None
        assert "notifications" not in sync_service(d).health().data
        assert ews.streaming.subscriptions() == []
    finally:
        await d.shutdown()
