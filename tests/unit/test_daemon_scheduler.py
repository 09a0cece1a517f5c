"""APScheduler on the daemon's clock: its plan (interval grid, coalescing, misfire grace) at FakeClock time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.scheduler import ClockScheduler

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def scheduler(clock: FakeClock) -> AsyncIterator[ClockScheduler]:
    s = ClockScheduler(clock)
    s.start()
    yield s
    if s.running:
        s.shutdown()


def test_it_never_reads_the_wall_clock() -> None:
    far = FakeClock(datetime(2031, 1, 1, tzinfo=UTC))  # years away from the machine's time, either way
    s = ClockScheduler(far)
    runs: list[str] = []
    s.every("job", lambda: runs.append("ran"), far.now(), MINUTE, misfire_grace=MINUTE / 2)
    s.start()
    assert s.run_due() == far.now() + MINUTE and runs == ["ran"]
    far.advance(30)
    assert s.run_due() == far.now() + timedelta(seconds=30) and runs == ["ran"]
    s.shutdown()


async def test_runs_on_its_grid_when_the_clock_reaches_it(clock: FakeClock, scheduler: ClockScheduler) -> None:
    runs: list[datetime] = []
    scheduler.every("job", lambda: runs.append(clock.now()), T0 + MINUTE, MINUTE, misfire_grace=MINUTE / 2)
    assert scheduler.run_due() == T0 + MINUTE and runs == []
    clock.advance(60)
    assert scheduler.run_due() == T0 + 2 * MINUTE and runs == [T0 + MINUTE]
    clock.advance(70)  # a little late: within the grace, and the grid stays where it was
    assert scheduler.run_due() == T0 + 3 * MINUTE and runs == [T0 + MINUTE, T0 + 2 * MINUTE + timedelta(seconds=10)]


async def test_runs_missed_while_suspended_are_coalesced_into_one(clock: FakeClock,
                                                                  scheduler: ClockScheduler) -> None:
    runs: list[datetime] = []
    scheduler.every("job", lambda: runs.append(clock.now()), T0, MINUTE, misfire_grace=MINUTE / 2)
    scheduler.run_due()
    clock.set(T0 + 10 * MINUTE + timedelta(seconds=5))  # nine runs missed, the last one 5 s ago
    assert scheduler.run_due() == T0 + 11 * MINUTE
    assert runs == [T0, T0 + 10 * MINUTE + timedelta(seconds=5)]


async def test_a_run_found_later_than_its_grace_is_skipped_for_the_next(clock: FakeClock,
                                                                        scheduler: ClockScheduler) -> None:
    runs: list[datetime] = []
    scheduler.every("job", lambda: runs.append(clock.now()), T0 + MINUTE, MINUTE, misfire_grace=MINUTE / 2)
    clock.set(T0 + MINUTE + timedelta(seconds=45))
    assert scheduler.run_due() == T0 + 2 * MINUTE and runs == []  # 45 s late, grace 30 s: the next is near
    clock.set(T0 + 2 * MINUTE)
    scheduler.run_due()
    assert runs == [T0 + 2 * MINUTE]


async def test_wait_ends_at_the_next_run_time_or_when_a_job_is_added(clock: FakeClock,
                                                                     scheduler: ClockScheduler) -> None:
    scheduler.every("a", lambda: None, T0 + MINUTE, MINUTE, misfire_grace=MINUTE)
    waiting = asyncio.create_task(scheduler.wait(scheduler.run_due()))
    await clock.wait_for_sleepers(1)
    clock.advance(60)
    await asyncio.wait_for(waiting, 5)
    waiting = asyncio.create_task(scheduler.wait(scheduler.run_due()))
    await clock.wait_for_sleepers(1)
    scheduler.every("b", lambda: None, T0 + 90 * MINUTE, MINUTE, misfire_grace=MINUTE)
    await asyncio.wait_for(waiting, 5)
    assert clock.sleepers == 0 and {j.id for j in scheduler.get_jobs()} == {"a", "b"}
