"""Which notices to organizers are due: bookings + the notices already recorded + now -> what to record.

Pure: no IO, no clock. The rules (docs/meetings.md tells organizers and admins):

- Only an organizer who is a configured PBX user ([[users]]) is told; an outside organizer never is (and a
  meeting whose organizer is not a PBX user is rejected for that very reason: nobody to tell).
- A booking that is rejected now, for a reason the organizer can act on (plugin/notices/reasons.py), and
  that has not ended, gets a notice: "rejected:<code>" when pbxsync never booked it, "cancelled:<code>"
  when pbxsync had booked it and took the booking back itself (its room left the pool, a conflict).
  Cancellations by the organizer (deleted, cancelled, PBX removed from Location) are their own doing: none.
- Never twice for the same (booking, reason): one recorded row each, whatever its state; a new reason is
  a new notice.
- A pending notice whose reason no longer holds (booked again, another reason, the booking gone or
  ended) is not sent: it becomes obsolete.
- A failed send is retried with back-off (1, 2, 4 ... minutes, at most an hour apart); after
  `MAX_ATTEMPTS` it is abandoned, shown in `pbxsync conferences`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pbxsync.plugin.booking.model import Booking, StoredState
from pbxsync.plugin.notices.reasons import reason_code

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


class NoticeState(StrEnum):
    PENDING = "pending"  # to be sent (again) at next_attempt_at
    SENT = "sent"
    OBSOLETE = "obsolete"  # its reason went away before it could be sent
    ABANDONED = "abandoned"  # MAX_ATTEMPTS sends failed


class NoticeKind(StrEnum):
    REJECTED = "rejected"  # never booked
    CANCELLED = "cancelled"  # booked, then cancelled by pbxsync itself


@dataclass(frozen=True)
class NoticeRow:
    """One recorded notice (the table organizer_notices)."""

    id: int
    booking_id: int
    reason: str  # "<kind>:<code>"
    state: NoticeState
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class NewNotice:
    booking_id: int
    reason: str
    recipient: str


@dataclass(frozen=True)
class NoticePlan:
    mark_booked: tuple[int, ...] = ()  # bookings seen scheduled: a later rejection is a cancellation
    create: tuple[NewNotice, ...] = ()
    obsolete: tuple[int, ...] = ()  # notice ids

    @property
    def empty(self) -> bool:
        return not (self.mark_booked or self.create or self.obsolete)


def split_reason(reason: str) -> tuple[NoticeKind, str]:
    kind, _, code = reason.partition(":")
    return NoticeKind(kind), code


def wanted_reason(booking: Booking, booked: Collection[int]) -> str | None:
    """The "<kind>:<code>" this booking's organizer is to be told about now, if any (recipient aside)."""
    draft = booking.draft
    if draft.state is not StoredState.REJECTED:
        return None
    code = reason_code(draft.reason)
    if code is None:
        return None
    kind = NoticeKind.CANCELLED if booking.id in booked else NoticeKind.REJECTED
    return f"{kind.value}:{code}"


def plan_notices(bookings: Iterable[Booking], recorded: Iterable[NoticeRow], booked: Collection[int],
                 recipients: Mapping[str, str], now: datetime) -> NoticePlan:
    """`bookings`: those not yet ended (any state); `recorded`: every notice row of them and every pending
    one; `booked`: ids of bookings seen scheduled before; `recipients`: configured PBX users' address by
    extension."""
    rows: dict[int, list[NoticeRow]] = {}
    for row in recorded:
        rows.setdefault(row.booking_id, []).append(row)
    mark: list[int] = []
    create: list[NewNotice] = []
    wanted: dict[int, str] = {}
    for booking in bookings:
        draft = booking.draft
        if draft.end <= now:
            continue
        if draft.state is StoredState.SCHEDULED and booking.id not in booked:
            mark.append(booking.id)
        recipient = recipients.get(draft.organizer_extension or "")
        reason = wanted_reason(booking, booked)
        if recipient is None or reason is None:
            continue
        wanted[booking.id] = reason
        if all(r.reason != reason for r in rows.get(booking.id, ())):
            create.append(NewNotice(booking.id, reason, recipient))
    obsolete = [r.id for booking_rows in rows.values() for r in booking_rows
                if r.state is NoticeState.PENDING and wanted.get(r.booking_id) != r.reason]
    return NoticePlan(tuple(mark), tuple(create), tuple(sorted(obsolete)))


def due(rows: Iterable[NoticeRow], now: datetime) -> list[NoticeRow]:
    """Pending notices whose (next) attempt is due, oldest first."""
    return sorted((r for r in rows if r.state is NoticeState.PENDING
                   and (r.next_attempt_at is None or r.next_attempt_at <= now)), key=lambda r: r.id)


def after_failure(row: NoticeRow, now: datetime) -> tuple[NoticeState, datetime]:
    """The state and next attempt time after the `row.attempts + 1`-th attempt failed."""
    attempts = row.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        return NoticeState.ABANDONED, now
    delay = min(FIRST_RETRY * (2 ** (attempts - 1)), LONGEST_RETRY)
    return NoticeState.PENDING, now + delay
