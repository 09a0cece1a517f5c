"""Debouncing change notifications: a burst of events for one folder becomes one sync pass. Pure (time is given).

A key (a folder) is due once it has been quiet for `quiet_seconds` since its last event, or
`max_wait_seconds` after its first, whichever comes first: a steady trickle of events cannot postpone
its pass forever, and a single event waits only the quiet time. `add(..., not_before=...)` holds a key
back (a retry after a failed pass); a fresh event does not bring a held key forward past that time.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class DebouncePolicy:
    quiet_seconds: float = 1.0
    max_wait_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.quiet_seconds < 0 or self.max_wait_seconds < self.quiet_seconds:
            raise ValueError("need 0 <= quiet_seconds <= max_wait_seconds")


@dataclass(frozen=True)
class Pending:
    first: datetime  # the first event of the burst (the lag is measured from it)
    last: datetime
    reasons: frozenset[str] = field(default_factory=frozenset)
    not_before: datetime | None = None
    retries: int = 0  # passes of this key that failed so far


class Debouncer(Generic[K]):
    def __init__(self, policy: DebouncePolicy | None = None) -> None:
        self.policy = policy or DebouncePolicy()
        self._pending: dict[K, Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: K, now: datetime, reason: str, *, not_before: datetime | None = None,
            retries: int = 0) -> None:
        old = self._pending.get(key)
        if old is None:
            self._pending[key] = Pending(now, now, frozenset({reason}), not_before, retries)
            return
        held = max((t for t in (old.not_before, not_before) if t is not None), default=None)
        self._pending[key] = replace(old, last=max(old.last, now), reasons=old.reasons | {reason}, not_before=held,
                                     retries=max(old.retries, retries))

    def due_at(self, pending: Pending) -> datetime:
        at = min(pending.last + timedelta(seconds=self.policy.quiet_seconds),
                 pending.first + timedelta(seconds=self.policy.max_wait_seconds))
        return max(at, pending.not_before) if pending.not_before is not None else at

    def next_due(self) -> datetime | None:
        return min((self.due_at(p) for p in self._pending.values()), default=None)

    def pop_due(self, now: datetime) -> dict[K, Pending]:
        due = {k: p for k, p in self._pending.items() if self.due_at(p) <= now}
        for key in due:
            del self._pending[key]
        return due
