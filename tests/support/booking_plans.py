"""Running the pure booking planner the way the store would, in memory (tests/unit/test_booking_*.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pbxsync.plugin.booking.model import Booking, BookingAction, MailboxCopy

Plan = Callable[..., list[BookingAction]]  # (copies, existing, **options) -> actions


def apply(existing: Sequence[Booking], actions: Sequence[BookingAction]) -> list[Booking]:
    """What the store does, in memory: new bookings get the next id."""
    result = {b.id: b for b in existing}
    for a in actions:
        booking_id = a.booking_id if a.booking_id is not None else max(result, default=0) + 1
        result[booking_id] = Booking(booking_id, a.draft)
    return sorted(result.values(), key=lambda b: b.id)


def settle_with(plan: Plan, cs: Sequence[MailboxCopy], existing: Sequence[Booking] = (), **kw: Any) -> list[Booking]:
    """Plan, apply, and check that planning again changes nothing (the planner reaches a fixed point)."""
    bookings = apply(existing, plan(cs, existing, **kw))
    assert plan(cs, bookings, **kw) == []
    return bookings
