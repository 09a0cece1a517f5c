"""Per-user sync timers: staggered, injectable clock, "Sync now", metrics and after-pass hooks."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.sync_timers import SyncService, UnknownUserError, due_users, staggered_schedule
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.errors import SourceAuthError
from pbxsync.sync.model import ContactChanges, utc_text
from pbxsync.sync.store.db import Store
from tests.support.quiet_source import QuietSource

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class CountingSource(QuietSource):
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.closed = False
        self.fail: set[str] = set()

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        self.calls[mailbox] += 1
        if mailbox in self.fail:
            raise SourceAuthError("401 from Exchange")
        return await super().sync_contacts(mailbox, sync_state)

    async def close(self) -> None:
        self.closed = True


def config(interval: int = 15, users: int = 3) -> Config:
    return parse_config({
        "exchange": {"username": "svc@example.com", "server": "http://127.0.0.1:1/EWS/Exchange.asmx"},
        "sync": {"interval_minutes": interval},
        "users": [{"extension": str(100 + i), "email": f"u{i}@example.com"} for i in range(users)],
    })


def test_first_passes_are_spread_evenly_over_one_interval() -> None:
    plan = staggered_schedule(["a", "b", "c", "d"], T0, timedelta(minutes=20))
    assert plan == {"a": T0, "b": T0 + timedelta(minutes=5), "c": T0 + timedelta(minutes=10),
                    "d": T0 + timedelta(minutes=15)}
    assert due_users(plan, T0 + timedelta(minutes=5)) == ["a", "b"]
    assert staggered_schedule([], T0, timedelta(minutes=1)) == {}


async def test_timers_sync_each_user_staggered_then_every_interval(store: Store) -> None:
    clock = FakeClock(T0)
    source = CountingSource()
    svc = SyncService(config(interval=3, users=3), store, clock, lambda _c: source)
    await svc.start()
    runner = asyncio.create_task(svc.run())
    await clock.wait_for_sleepers(1)
    assert source.calls == Counter({"u0@example.com": 1})
    clock.advance(60)
    await clock.wait_for_sleepers(1)
    assert source.calls["u1@example.com"] == 1 and source.calls["u2@example.com"] == 0
    clock.advance(60)
    await clock.wait_for_sleepers(1)
    clock.advance(60)  # T0+3min: u0 is due again
    await clock.wait_for_sleepers(1)
    assert source.calls == Counter({"u0@example.com": 2, "u1@example.com": 1, "u2@example.com": 1})
    assert svc.health().ok and svc.passes == 4
    await svc.stop()
    await runner
    assert source.closed


async def test_after_a_suspend_the_users_due_are_synced_once_in_one_pass_the_long_missed_at_their_next_slot(
        store: Store) -> None:
    clock = FakeClock(T0)
    source = CountingSource()
    svc = SyncService(config(interval=4, users=4), store, clock, lambda _c: source)
    await svc.start()  # slots: u0 at minute 0, u1 at 1, u2 at 2, u3 at 3, each again every 4 minutes
    runner = asyncio.create_task(svc.run())
    await clock.wait_for_sleepers(1)
    assert source.calls == Counter({"u0@example.com": 1})
    clock.set(T0 + timedelta(minutes=10, seconds=30))  # suspended: each user missed one or more slots
    await clock.wait_for_sleepers(1)
    # coalesced: u1 (last slot 9:00) and u2 (10:00) once, in one pass; u3 (7:00) and u0 (8:00) are later than
    # the grace of half an interval: skipped, their next slots (11:00, 12:00) come sooner
    assert source.calls == Counter({"u0@example.com": 1, "u1@example.com": 1, "u2@example.com": 1})
    assert svc.passes == 2 and svc.last_pass is not None and svc.last_pass["users"] == 2
    assert svc.schedule == {"100": T0 + timedelta(minutes=12), "101": T0 + timedelta(minutes=13),
                            "102": T0 + timedelta(minutes=14), "103": T0 + timedelta(minutes=11)}
    assert svc.health().data["next_due"] == utc_text(T0 + timedelta(minutes=11)) and svc.health().data["behind"] == 0
    clock.set(T0 + timedelta(minutes=11))
    await clock.wait_for_sleepers(1)
    clock.set(T0 + timedelta(minutes=12))
    await clock.wait_for_sleepers(1)
    assert source.calls == Counter({"u0@example.com": 2, "u1@example.com": 1, "u2@example.com": 1,
                                    "u3@example.com": 1})
    await svc.stop()
    await runner


async def test_interval_zero_means_no_timed_pass_but_sync_now_works(store: Store) -> None:
    clock = FakeClock(T0)
    source = CountingSource()
    hooked: list[PassSummary] = []

    async def after(summary: PassSummary) -> None:
        hooked.append(summary)

    svc = SyncService(config(interval=0, users=2), store, clock, lambda _c: source, [after])
    await svc.start()
    runner = asyncio.create_task(svc.run())
    await asyncio.sleep(0)
    assert clock.sleepers == 0 and not source.calls
    summary = await svc.sync_now(svc.resolve_users("101"))
    assert [u.extension for u in summary.users] == ["101"] and summary.ok
    assert hooked == [summary]
    with pytest.raises(UnknownUserError):
        svc.resolve_users("999")
    await svc.stop()
    await runner


async def test_a_failing_user_is_counted_by_kind_and_shown_in_health(store: Store) -> None:
    clock = FakeClock(T0)
    source = CountingSource()
    source.fail.add("u1@example.com")
    svc = SyncService(config(interval=0, users=2), store, clock, lambda _c: source)
    await svc.start()
    before = metrics.ERRORS.labels("auth")._value.get()
    passes_before = metrics.SYNC_PASSES.labels("manual", "error")._value.get()
    summary = await svc.sync_now()
    assert not summary.ok
    assert metrics.ERRORS.labels("auth")._value.get() == before + 1
    assert metrics.SYNC_PASSES.labels("manual", "error")._value.get() == passes_before + 1
    health = svc.health()
    assert not health.ok and "failed: 101" in health.detail


async def test_a_failing_after_pass_hook_does_not_lose_the_pass(store: Store) -> None:
    async def broken(_summary: PassSummary) -> None:
        raise ValueError("planner bug")

    svc = SyncService(config(interval=0, users=1), store, FakeClock(T0), lambda _c: CountingSource(), [broken])
    await svc.start()
    summary = await svc.sync_now()
    assert summary.ok and svc.passes == 1


async def test_the_steps_after_a_pass_are_read_at_each_pass_so_a_reload_reaches_a_running_service(
        store: Store) -> None:
    """The daemon rebuilds its list of steps in place on reload (plugin.daemon.wiring.build_specs)."""
    ran: list[str] = []

    async def old_step(_summary: PassSummary) -> None:
        ran.append("old")

    async def new_step(_summary: PassSummary) -> None:
        ran.append("new")

    steps = [old_step]
    svc = SyncService(config(interval=0, users=1), store, FakeClock(T0), lambda _c: CountingSource(), steps)
    await svc.start()
    await svc.sync_now()
    steps[:] = [old_step, new_step]  # what a reload that switched a step on does
    await svc.sync_now()
    steps.clear()
    await svc.sync_now()
    assert ran == ["old", "old", "new"]
    await svc.stop()
