"""Growing delays for repeated failures (wrong LDAP binds, wrong conference PINs). Pure: time is an input.

A failure counts against every key of the attempt, e.g. (source, account) and (source,). Before an attempt
is *checked*, it waits until each key's next free slot; each admitted attempt pushes that slot on by the
key's current delay, so parallel connections queue behind each other instead of guessing side by side.
The delay grows with the failures (after `free` of them, `first` seconds, doubling up to `longest`);
failures decay with a half-life, and a success clears its (source, account) key: the real user is
slowed down while somebody guesses, never locked out for good. An attempt that would wait longer than
`longest_queue` is refused without being checked (it would only pile up).

`WindowedLog` makes repeated failures one log line per key and window instead of one per try.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

MAX_KEYS = 10_000  # records kept; beyond, the quietest are forgotten (memory stays bounded)


@dataclass(frozen=True, slots=True)
class Policy:
    free: int = 3  # failures without any delay (typos)
    first: float = 0.5  # seconds, the first delay
    longest: float = 30.0  # the delay stops growing here
    half_life: float = 600.0  # seconds for the failure count to halve
    longest_queue: float = 120.0  # an attempt that would wait longer is refused outright

    def delay(self, failures: float) -> float:
        over = int(failures + 0.5) - self.free  # decay leaves fractions: 2.9999 failures are 3
        if over < 0:
            return 0.0
        return min(self.longest, self.first * 2.0 ** min(over, 30))


@dataclass(slots=True)
class _Record:
    failures: float = 0.0
    updated: float = 0.0
    next_free: float = 0.0


@dataclass
class FailureThrottle:
    """Failures per key; `admit` before checking an attempt, `record` after."""

    records: dict[Hashable, _Record] = field(default_factory=dict)

    def _record(self, key: Hashable, policy: Policy, now: float) -> _Record:
        rec = self.records.get(key)
        if rec is None:
            if len(self.records) >= MAX_KEYS:
                self._forget(now)
            rec = self.records[key] = _Record(updated=now, next_free=now)
        elif now > rec.updated:
            rec.failures *= 0.5 ** ((now - rec.updated) / policy.half_life)
            rec.updated = now
        return rec

    def _forget(self, now: float) -> None:
        quiet = [k for k, r in self.records.items() if r.next_free <= now and r.failures < 1.0]
        for key in quiet or list(self.records)[: MAX_KEYS // 10]:
            del self.records[key]

    def admit(self, keys: Sequence[tuple[Hashable, Policy]], now: float) -> float | None:
        """Seconds to wait before checking this attempt (0.0: at once), or None: refuse it unchecked."""
        records = [(self._record(key, policy, now), policy) for key, policy in keys]
        wait = max((max(0.0, rec.next_free - now) for rec, _ in records), default=0.0)
        if any(wait > policy.longest_queue for _, policy in keys):
            return None
        at = now + wait
        for rec, policy in records:
            rec.next_free = max(rec.next_free, at + policy.delay(rec.failures))
        return wait

    def record(self, keys: Sequence[tuple[Hashable, Policy]], ok: bool, now: float) -> None:
        """The outcome of an admitted attempt. A success clears the first key (the most specific one)."""
        for n, (key, policy) in enumerate(keys):
            rec = self._record(key, policy, now)
            if not ok:
                rec.failures += 1.0
                rec.next_free = max(rec.next_free, now + policy.delay(rec.failures))
            elif n == 0:
                rec.failures, rec.next_free = 0.0, now

    def failures(self, key: Hashable) -> float:
        rec = self.records.get(key)
        return 0.0 if rec is None else rec.failures


@dataclass
class WindowedLog:
    """Count events per key; `note` says when (and with how many) to log: once per `window` seconds."""

    window: float = 60.0
    counts: dict[Hashable, tuple[float, int]] = field(default_factory=dict)  # key -> (window start, count)

    def note(self, key: Hashable, now: float) -> int:
        """Record one event; returns how many to report now (0: stay quiet, already reported)."""
        start, count = self.counts.get(key, (now - self.window, 0))
        if now - start >= self.window:
            if len(self.counts) >= MAX_KEYS:
                self.counts.clear()
            self.counts[key] = (now, 0)
            return count + 1
        self.counts[key] = (start, count + 1)
        return 0
