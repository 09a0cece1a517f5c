"""The daemon's one clock. Production uses the system clock; tests advance a fake one by hand.

Every wait in the daemon (sync timers, restart back-off, AUTOCALL's start, pre-start check, retries and
pacing) goes through `Clock.sleep_until`, so a test moves time forward with `FakeClock.advance` and never
sleeps for real. docs/design.md ("Time") says how APScheduler, which plans the timed sync passes, agrees.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


async def until_deadline(clock: Clock, deadline: datetime | None, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, unless the clock reaches `deadline` first: then it is cancelled and TimeoutError
    raised (asyncio.wait_for on the daemon's clock; None: no deadline)."""
    work = asyncio.ensure_future(awaitable)
    if deadline is None:
        return await work
    alarm = asyncio.ensure_future(clock.sleep_until(deadline))
    try:
        await asyncio.wait({work, alarm}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when we are cancelled ourselves
        alarm.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if work.cancelled():
        raise TimeoutError(f"not done by {deadline.isoformat()}")
    return work.result()


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # Re-check after waking: the wall clock can jump (NTP) while we sleep on the monotonic loop.
        while (remaining := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(min(remaining, 60.0))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A manual clock: sleepers wake when `advance`/`set` moves time past their deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._seq), fut))
        await fut

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + timedelta(seconds=seconds))

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def set(self, moment: datetime) -> None:
        self._now = moment
        while self._sleepers and self._sleepers[0][0] <= moment:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many waits are pending (cancelled ones excluded), so tests can wait for a loop to park."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_wakeup(self) -> datetime | None:
        pending = [w for w, _, f in self._sleepers if not f.done()]
        return min(pending) if pending else None

    async def wait_for_sleepers(self, count: int, within: float = 5.0) -> None:
        """Let the loop run until at least `count` tasks wait on this clock (bounded, never a timing)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.sleepers < count:
            if loop.time() > deadline:
                raise TimeoutError(f"expected {count} sleepers, have {self.sleepers}")
            await asyncio.sleep(0.001)
