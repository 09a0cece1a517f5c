"""LDAP work shared out in short slices, a bounded amount per event-loop turn.

Every connection with something to answer queues here; one run of the queue (one callback on the loop)
gives connections in turn a slice of at most `slice_seconds` until `turn_seconds` are used, then yields
the loop. Callbacks queued by other services meanwhile (FastAGI reads, AUTOCALL timers) run before the
next run, because asyncio runs each turn's ready callbacks in order and the next run is scheduled behind
them. So however many searches are outstanding, LDAP never holds the loop for much longer than
`turn_seconds` at a time, and a client sending ten requests in one write gets one slice per round.

Two queues, like a feedback scheduler: a request that has used more than 5 ms of CPU (the connection
says so: `heavy`) moves to the heavy queue, which gets one slice per run when no light work waits, else
one every `heavy_every` runs, and never more than `heavy_share` of the time (a timer waits out the rest).
Phones' searches finish within their first slices, so a crowd of costly searches slows them down little;
the costly ones crawl until their time limit ends them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol


class Steppable(Protocol):
    @property
    def heavy(self) -> bool:
        """The request in progress has used more CPU than a phone's search would."""

    def step(self, slice_end: float) -> bool:
        """Do work until `time.perf_counter()` passes slice_end; True when more is left right away."""


class Turns:
    def __init__(self, slice_seconds: float = 0.0005, turn_seconds: float = 0.001, heavy_every: int = 4,
                 heavy_share: float = 0.25) -> None:
        self.slice_seconds = slice_seconds
        self.turn_seconds = turn_seconds
        self.heavy_every = heavy_every
        self.heavy_share = heavy_share
        self.light: deque[Steppable] = deque()
        self.heavy: deque[Steppable] = deque()
        self.queued: set[int] = set()
        self.handle: asyncio.Handle | None = None  # the next run, when one is scheduled
        self.soon = False  # that run is the next loop turn (not a timer)
        self.heavy_not_before = 0.0  # perf_counter time: heavy work keeps to its share of the CPU
        self.runs = 0  # runs so far (for tests and the benchmark)

    @property
    def waiting(self) -> int:
        return len(self.queued)

    def want(self, worker: Steppable) -> None:
        """`worker` has something to do: give it slices until its step says it is done."""
        if id(worker) not in self.queued:
            self.queued.add(id(worker))
            (self.heavy if worker.heavy else self.light).append(worker)
        self._schedule()

    def _schedule(self) -> None:
        if not self.queued:
            return
        delay = 0.0 if self.light else max(0.0, self.heavy_not_before - time.perf_counter())
        if self.handle is not None:
            if self.soon or delay > 0:
                return  # a run is due at the next turn anyway, or heavy work waits for its share
            self.handle.cancel()  # light work arrived while heavy work waited on a timer
        loop = asyncio.get_running_loop()
        self.soon = delay == 0
        self.handle = loop.call_soon(self._run) if self.soon else loop.call_later(delay, self._run)

    def _run(self) -> None:
        self.handle = None
        self.runs += 1
        clock = time.perf_counter
        turn_end = clock() + self.turn_seconds
        while self.light and clock() < turn_end:
            self._give(self.light.popleft(), min(turn_end, clock() + self.slice_seconds))
        if self.heavy and clock() >= self.heavy_not_before and (not self.light or self.runs % self.heavy_every == 0):
            started = clock()
            self._give(self.heavy.popleft(), started + self.slice_seconds)  # one slice, then the loop again
            # Costly work keeps to its share of the CPU, so that the daemon never becomes a CPU hog that
            # the OS scheduler then makes wait behind other processes (FastAGI and AUTOCALL would wait too).
            self.heavy_not_before = clock() + (clock() - started) * (1 / self.heavy_share - 1)
        self._schedule()

    def _give(self, worker: Steppable, slice_end: float) -> None:
        self.queued.discard(id(worker))
        if worker.step(slice_end) and id(worker) not in self.queued:
            self.queued.add(id(worker))
            (self.heavy if worker.heavy else self.light).append(worker)
