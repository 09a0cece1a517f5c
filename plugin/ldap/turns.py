"""LDAP work shared out in short slices, a bounded amount per event-loop turn.

Every connection with something to answer queues here; one run of the queue (one callback on the loop)
gives connections in turn a slice of at most `slice_seconds` until `turn_seconds` are used, then yields
the loop. Callbacks queued by other services meanwhile (FastAGI reads, AUTOCALL timers) run before the
next run, because asyncio runs each turn's ready callbacks in order and the next run is scheduled behind
them. So however many searches are outstanding, LDAP never holds the loop for much longer than
`turn_seconds` at a time, and a client sending ten requests in one write gets one slice per round.

Two queues, like a feedback scheduler: a request that has used more than `heavy_seconds` of CPU moves to
the heavy queue, which gets one slice every `heavy_every` runs (or the rest of a run when nothing else
waits). Phones' searches finish within their first slices, so a crowd of costly searches slows them down
little; the costly ones crawl until their time limit (`[ldap] time_limit_seconds`) ends them.
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
    def __init__(self, slice_seconds: float = 0.0005, turn_seconds: float = 0.001, heavy_every: int = 4) -> None:
        self.slice_seconds = slice_seconds
        self.turn_seconds = turn_seconds
        self.heavy_every = heavy_every
        self.light: deque[Steppable] = deque()
        self.heavy: deque[Steppable] = deque()
        self.queued: set[int] = set()
        self.scheduled = False
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
        if self.queued and not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self.scheduled = False
        self.runs += 1
        clock = time.perf_counter
        turn_end = clock() + self.turn_seconds
        heavy_turn = self.runs % self.heavy_every == 0
        while self.queued:
            if self.light and not (heavy_turn and self.heavy):
                queue = self.light
            else:
                queue, heavy_turn = self.heavy, False
            worker = queue.popleft()
            self.queued.discard(id(worker))
            if worker.step(min(turn_end, clock() + self.slice_seconds)) and id(worker) not in self.queued:
                self.queued.add(id(worker))
                (self.heavy if worker.heavy else self.light).append(worker)
            if clock() >= turn_end:
                break
        self._schedule()
