"""AUTOCALL's alarms and deadlines follow the daemon's clock: a FakeClock drives them, nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin.autocall.alarms import Alarms
from pbxsync.plugin.daemon.clock import FakeClock, until_deadline

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def recorder(rung: list[str], name: str) -> Callable[[], Awaitable[None]]:
    async def ring() -> None:
        rung.append(name)

    return ring


async def let_run() -> None:
    """A few turns of the event loop (no time passes): woken tasks run to their next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_alarm_rings_when_the_clock_reaches_it_and_a_moved_one_at_its_new_time() -> None:
    clock, rung = FakeClock(T0), []
    alarms = Alarms(clock)
    alarms.set("a", T0 + timedelta(minutes=1), recorder(rung, "a"))
    alarms.set("b", T0 + timedelta(minutes=2), recorder(rung, "b"))
    alarms.set("b", T0 + timedelta(minutes=3), recorder(rung, "b moved"))
    await clock.wait_for_sleepers(2)
    assert alarms.pending() == {"a": T0 + timedelta(minutes=1), "b": T0 + timedelta(minutes=3)}
    clock.advance(120)
    await let_run()
    assert rung == ["a"] and alarms.pending() == {"b": T0 + timedelta(minutes=3)}
    clock.advance(60)
    await let_run()
    assert rung == ["a", "b moved"] and alarms.pending() == {}
    await alarms.close()


async def test_a_cancelled_alarm_never_rings_and_one_in_the_past_rings_at_once() -> None:
    clock, rung = FakeClock(T0), []
    alarms = Alarms(clock)
    alarms.set("gone", T0 + timedelta(seconds=1), recorder(rung, "gone"))
    alarms.cancel("gone")
    alarms.cancel("never set")
    alarms.set("late", T0 - timedelta(hours=1), recorder(rung, "late"))
    await let_run()
    clock.advance(10)
    await let_run()
    assert rung == ["late"] and clock.sleepers == 0
    await alarms.close()


async def test_a_ringing_alarm_can_rearm_its_own_name_and_close_stops_it() -> None:
    clock = FakeClock(T0)
    alarms = Alarms(clock)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long_action() -> None:
        alarms.cancel("job")  # rung: no longer pending, so this does not cancel the running action
        alarms.set("job", T0 + timedelta(hours=1), long_action)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    alarms.set("job", T0, long_action)
    await asyncio.wait_for(started.wait(), 5)
    assert alarms.pending() == {"job": T0 + timedelta(hours=1)}
    await alarms.close()
    assert cancelled.is_set() and alarms.pending() == {} and clock.sleepers == 0


async def test_until_deadline_returns_the_result_or_times_out_on_the_clock() -> None:
    clock = FakeClock(T0)
    done = asyncio.Event()

    async def work() -> str:
        await done.wait()
        return "result"

    waiter = asyncio.create_task(until_deadline(clock, T0 + timedelta(seconds=5), work()))
    await clock.wait_for_sleepers(1)
    done.set()
    assert await waiter == "result"
    assert clock.sleepers == 0

    never = asyncio.Event()
    waiter = asyncio.create_task(until_deadline(clock, T0 + timedelta(seconds=5), never.wait()))
    await clock.wait_for_sleepers(1)
    clock.advance(4.9)
    await let_run()
    assert not waiter.done()
    clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await waiter
    assert await until_deadline(clock, None, asyncio.sleep(0, "no deadline")) == "no deadline"
