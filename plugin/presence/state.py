"""Pure presence decisions: what a user's state is at time t, and when it next changes.

Rules (tests/unit/test_presence_state.py reads as them):
- A calendar item makes its owner busy from its start (inclusive) to its end (exclusive) when its show-as is
  one of `busy_statuses`; a cancelled item, or one the owner declined, never does.
- Busy items that overlap or touch (back-to-back meetings) are one busy block: the state says "until" the
  block's end, and nothing changes at the seam between them, so a BLF key never flickers.
- While busy, the strongest show-as of the items running at t is shown (oof > busy > tentative >
  workingelsewhere > unknown): out of office is presence "away", anything else "dnd".
- Nothing about an item but its times and show-as is read here: a private meeting's subject never reaches
  a phone (the message is pbxsync's own template).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pbxsync.sync.model import ShowAs

# Which show-as wins when several busy items run at once (higher first).
_STRENGTH = {ShowAs.OOF: 5, ShowAs.BUSY: 4, ShowAs.TENTATIVE: 3, ShowAs.WORKING_ELSEWHERE: 2, ShowAs.UNKNOWN: 1,
             ShowAs.FREE: 0}


@dataclass(frozen=True)
class BusyItem:
    """One calendar occurrence as presence sees it: times and show-as, nothing else."""

    start: datetime  # UTC
    end: datetime
    show_as: ShowAs
    cancelled: bool = False
    declined: bool = False


@dataclass(frozen=True)
class UserState:
    """A user's presence at one instant. `until` is the end of the busy block (None while free)."""

    busy: bool
    show_as: ShowAs = ShowAs.FREE
    until: datetime | None = None


FREE = UserState(False)


def counts(item: BusyItem, busy_statuses: Collection[ShowAs]) -> bool:
    return not item.cancelled and not item.declined and item.end > item.start and item.show_as in busy_statuses


def busy_items(items: Iterable[BusyItem], busy_statuses: Collection[ShowAs]) -> list[BusyItem]:
    """The items that make their owner busy, by start."""
    return sorted((i for i in items if counts(i, busy_statuses)), key=lambda i: (i.start, i.end))


def state_at(items: Sequence[BusyItem], at: datetime, busy_statuses: Collection[ShowAs]) -> UserState:
    """The user's state at `at`, from all their items (any order, any mix)."""
    return _state(busy_items(items, busy_statuses), at)


def _state(busy: Sequence[BusyItem], at: datetime) -> UserState:
    running = [i for i in busy if i.start <= at < i.end]
    if not running:
        return FREE
    shown = max(running, key=lambda i: _STRENGTH[i.show_as]).show_as
    until = max(i.end for i in running)
    for item in busy:  # extend over items that overlap or touch the block (sorted by start)
        if item.start <= until < item.end:
            until = item.end
    return UserState(True, shown, until)


def next_change(items: Sequence[BusyItem], at: datetime, busy_statuses: Collection[ShowAs]) -> datetime | None:
    """The first instant after `at` where the state differs from the state at `at` (None: never)."""
    busy = busy_items(items, busy_statuses)
    now = _state(busy, at)
    for moment in sorted({t for i in busy for t in (i.start, i.end) if t > at}):
        if _state(busy, moment) != now:
            return moment
    return None


def transitions(items: Sequence[BusyItem], start: datetime, end: datetime,
                busy_statuses: Collection[ShowAs]) -> list[tuple[datetime, UserState]]:
    """Every (instant, new state) in (start, end]: the schedule a user's phone would see."""
    busy = busy_items(items, busy_statuses)
    out: list[tuple[datetime, UserState]] = []
    current = _state(busy, start)
    for moment in sorted({t for i in busy for t in (i.start, i.end) if start < t <= end}):
        state = _state(busy, moment)
        if state != current:
            out.append((moment, state))
            current = state
    return out
