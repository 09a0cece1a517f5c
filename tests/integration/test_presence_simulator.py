"""Presence end to end against the AMI simulator: device and presence state follow the calendar in SQLite.

The presence service runs on a FakeClock: a test moves it to a meeting's start or end by hand; only the AMI
link takes real time, which `until` polls for.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.presence.calendar import PresenceSettings
from pbxsync.plugin.presence.service import ALARM, PresenceService
from pbxsync.sync.model import Sensitivity, ShowAs
from pbxsync.sync.store.db import Store
from tests.support.metrics import sample
from tests.support.presence import delete_item, occurrence, presence_config, store_items
from tests.support.waiting import until

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
USERS = {"101": "alice@example.com", "102": "bob@example.com", "103": "carol@example.com"}


def device(sim: AsteriskSimulator, ext: str) -> str:
    return sim.world.astdb.get(f"CustomDevstate/pbxsync-{ext}", "UNKNOWN")


def presence(sim: AsteriskSimulator, ext: str) -> tuple[str, str]:
    value = sim.world.astdb.get(f"CustomPresence/{ext}", "not_set,,,")
    state, _, message, options = value.split(",")
    return state, base64.b64decode(message).decode() if "e" in options else message


@pytest.fixture
async def client(ami: AsteriskSimulator) -> AsyncIterator[AmiClient]:
    c = AmiClient(AmiSettings(port=ami.port, secret=presence_config({}).pbx.secret, action_timeout=5.0))
    c.start()
    assert await c.wait_connected(5)
    yield c
    await c.stop()


async def started(store: Store, client: AmiClient, clock: FakeClock,
                  opted_out: frozenset[str] = frozenset()) -> PresenceService:
    settings = PresenceSettings.from_config(presence_config(USERS, opted_out=opted_out))
    service = PresenceService(store, client, settings, clock)
    await service.start()
    return service


async def test_busy_at_a_meetings_start_and_free_at_its_end_scheduled_on_the_clock(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0)
    await store_items(store, "alice@example.com", occurrence("m1", T0 + timedelta(hours=1),
                                                             T0 + timedelta(hours=2)), now=T0)
    service = await started(store, client, clock)
    try:
        assert [device(ami, e) for e in USERS] == ["NOT_INUSE"] * 3  # every user is told once at start
        assert presence(ami, "101") == ("available", "")
        assert service.alarms.pending() == {ALARM: T0 + timedelta(hours=1)}
        clock.set(T0 + timedelta(hours=1))
        await until(lambda: device(ami, "101") == "BUSY")
        assert presence(ami, "101") == ("dnd", "In a meeting until 10:00")
        assert device(ami, "102") == "NOT_INUSE"
        clock.set(T0 + timedelta(hours=2))
        await until(lambda: device(ami, "101") == "NOT_INUSE")
        assert presence(ami, "101") == ("available", "")
        assert service.alarms.pending() == {}
    finally:
        await service.stop()


async def test_back_to_back_meetings_send_nothing_at_the_seam(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0)
    await store_items(store, "alice@example.com",
                      occurrence("a", T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
                      occurrence("b", T0 + timedelta(hours=2), T0 + timedelta(hours=3)), now=T0)
    service = await started(store, client, clock)
    try:
        clock.set(T0 + timedelta(hours=1))
        await until(lambda: device(ami, "101") == "BUSY")
        assert presence(ami, "101") == ("dnd", "In a meeting until 11:00")
        # the one alarm skips the seam at 10:00: the next change is the block's end
        assert service.alarms.pending() == {ALARM: T0 + timedelta(hours=3)}
    finally:
        await service.stop()


async def test_a_cancelled_meeting_frees_its_owner_at_once_after_the_sync_pass(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0 + timedelta(minutes=5))
    await store_items(store, "alice@example.com", occurrence("m1", T0, T0 + timedelta(hours=1)),
                      occurrence("m2", T0, T0 + timedelta(hours=1), ShowAs.OOF), now=T0)
    await store_items(store, "bob@example.com", occurrence("m3", T0, T0 + timedelta(hours=1)), now=T0)
    service = await started(store, client, clock)
    try:
        assert presence(ami, "101") == ("away", "Out of office until 09:00")
        assert device(ami, "102") == "BUSY"
        await store_items(store, "bob@example.com", occurrence("m3", T0, T0 + timedelta(hours=1), cancelled=True),
                          now=clock.now())
        await delete_item(store, "alice@example.com", "m2", clock.now())
        await service.refresh()  # what the after-pass hook does
        assert device(ami, "102") == "NOT_INUSE"
        assert presence(ami, "101") == ("dnd", "In a meeting until 09:00")
    finally:
        await service.stop()


async def test_after_a_restart_the_state_is_rebuilt_from_sqlite(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0 + timedelta(minutes=30))
    await store_items(store, "carol@example.com", occurrence("m1", T0, T0 + timedelta(hours=1)), now=T0)
    first = await started(store, client, clock)
    await first.stop()
    ami.world.astdb.clear()  # Asterisk lost everything (a fresh install)
    second = await started(store, client, clock)
    try:
        assert device(ami, "103") == "BUSY" and device(ami, "101") == "NOT_INUSE"
        assert second.alarms.pending() == {ALARM: T0 + timedelta(hours=1)}
    finally:
        await second.stop()


async def test_private_items_give_status_and_times_only(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    await store_items(store, "alice@example.com", occurrence(
        "p", T0, T0 + timedelta(hours=1), subject="Secret merger, with Contoso", sensitivity=Sensitivity.PRIVATE),
        now=T0)
    service = await started(store, client, clock)
    try:
        assert device(ami, "101") == "BUSY"
        assert presence(ami, "101") == ("dnd", "In a meeting until 09:00")
        assert not any("merger" in base64.b64decode(v.split(",")[2] or "").decode(errors="replace")
                       for v in ami.world.astdb.values() if v.count(",") == 3)
    finally:
        await service.stop()


async def test_opted_out_users_are_set_free_once_never_busy_and_free_or_tentative_items_do_not_count(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    await store_items(store, "alice@example.com", occurrence("m", T0, T0 + timedelta(hours=1)), now=T0)
    await store_items(store, "bob@example.com", occurrence("t", T0, T0 + timedelta(hours=1), ShowAs.TENTATIVE),
                      occurrence("f", T0, T0 + timedelta(hours=1), ShowAs.FREE), now=T0)
    ami.world.astdb["CustomDevstate/pbxsync-101"] = "BUSY"  # left by the time 101 still took part
    service = await started(store, client, clock, opted_out=frozenset({"101"}))
    try:
        await until(lambda: device(ami, "101") == "NOT_INUSE")
        assert device(ami, "102") == "NOT_INUSE"
        assert "101" not in service.sent and service.health().users == 2
        clock.set(T0 + timedelta(minutes=30))
        await service.refresh()
        assert device(ami, "101") == "NOT_INUSE"
    finally:
        await service.stop()


async def test_updates_missed_while_the_link_is_down_are_sent_after_the_next_login(
        store: Store, ami: AsteriskSimulator) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    await store_items(store, "alice@example.com", occurrence("m", T0, T0 + timedelta(hours=1)), now=T0)
    client = AmiClient(AmiSettings(port=ami.port, secret=presence_config({}).pbx.secret, action_timeout=5.0))
    service = await started(store, client, clock)  # the link is not up yet: nothing can be sent
    try:
        assert service.health().unsent == 3 and not ami.world.astdb
        client.start()
        await until(lambda: device(ami, "101") == "BUSY" and device(ami, "103") == "NOT_INUSE")
        await until(lambda: service.health().unsent == 0)
    finally:
        await service.stop()
        await client.stop()


async def test_an_ami_user_without_the_call_class_is_reported_with_the_fix(store: Store) -> None:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "ami-secret", frozenset({"call", "system"}),
                                           frozenset({"originate", "reporting"}))], login_fail_delay=0.0)
    await sim.start()
    client = AmiClient(AmiSettings(port=sim.port, secret=presence_config({}).pbx.secret, action_timeout=5.0))
    client.start()
    try:
        assert await client.wait_connected(5)
        service = await started(store, client, FakeClock(T0))
        health = service.health()
        assert health.unsent == 3 and not sim.world.astdb
        assert "add 'call' to write=" in health.last_error
        await service.stop()
    finally:
        await client.stop()
        await sim.stop()


async def test_the_busy_users_gauge_follows_the_calendar_and_drops_to_zero_when_presence_stops(
        store: Store, ami: AsteriskSimulator, client: AmiClient) -> None:
    clock = FakeClock(T0)
    await store_items(store, "alice@example.com", occurrence("a", T0 + timedelta(hours=1), T0 + timedelta(hours=3)),
                      now=T0)
    await store_items(store, "bob@example.com", occurrence("b", T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
                      now=T0)
    service = await started(store, client, clock)
    try:
        assert sample("pbxsync_presence_busy_users") == 0.0
        clock.set(T0 + timedelta(hours=1))
        await until(lambda: sample("pbxsync_presence_busy_users") == 2.0)
        clock.set(T0 + timedelta(hours=2))
        await until(lambda: sample("pbxsync_presence_busy_users") == 1.0)
        assert device(ami, "101") == "BUSY"
    finally:
        await service.stop()
    assert sample("pbxsync_presence_busy_users") == 0.0
