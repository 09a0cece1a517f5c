"""Plain data of the booking side: meeting copies in, bookings and actions out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pbxsync.sync.model import Occurrence, utc_text

MeetingKey = tuple[str, str]  # (uid, recurrence key): "" for a single meeting, RecurrenceId for a series


def meeting_key(occurrence: Occurrence) -> MeetingKey:
    """A single meeting is its UID (so moving it keeps the key); a series occurrence adds its
    RecurrenceId, which Exchange keeps when one occurrence is moved."""
    # No UID (an appointment copied with "Copy to My Calendar", or broken data) must not merge unrelated
    # meetings: the key is the item (its series master for an occurrence), as stable as the item.
    uid = occurrence.uid.strip() or f"item:{occurrence.series_item_id or occurrence.item_id}"
    if occurrence.recurrence_id is None:
        return (uid, "")
    return (uid, utc_text(occurrence.recurrence_id))


class StoredState(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class ShownState(StrEnum):
    """What `pbxsync conferences` shows: a scheduled booking is active or done depending on `now`."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    CANCELLED = "cancelled"
    DONE = "done"
    REJECTED = "rejected"


class Role(StrEnum):
    HOST = "host"
    REQUIRED = "required"
    OPTIONAL = "optional"


class CopyState(StrEnum):
    """Whether the participant's own calendar holds the meeting (only known when it is synced)."""

    UNKNOWN = "unknown"
    PRESENT = "present"
    DELETED = "deleted"  # it was there and the participant deleted it: they are not called


DELETED_RESPONSE = "deleted"  # the `response` shown for a participant who deleted their copy


@dataclass(frozen=True)
class MailboxCopy:
    """One stored occurrence row: a meeting occurrence as one synced mailbox holds it."""

    mailbox: str
    occurrence: Occurrence
    updated_at: str = ""


@dataclass(frozen=True)
class MailboxSync:
    """How far a mailbox's calendar can be believed: only a trusted mailbox's *missing* copies mean
    anything, and only inside the window its last successful fetch covered."""

    mailbox: str
    trusted: bool
    window_start: datetime | None = None
    window_end: datetime | None = None

    def covers(self, start: datetime, end: datetime) -> bool:
        if not self.trusted or self.window_start is None or self.window_end is None:
            return False
        if end > start:
            return start < self.window_end and end > self.window_start
        return self.window_start <= start < self.window_end


@dataclass(frozen=True)
class Participant:
    extension: str
    email: str
    name: str
    role: Role
    response: str  # Exchange's ResponseType value, as seen in the truth copy
    invited: bool = True  # False once the organizer removed them (the row stays: calls reference it)
    copy_state: CopyState = CopyState.UNKNOWN
    id: int | None = field(default=None, compare=False)  # stable store id; None until stored
    via_group: str = ""  # the invited group that brought them in ("" = named in the organizer's list)
    forwarded: bool = False  # in only because their own calendar holds a (forwarded) copy of the meeting

    @property
    def call(self) -> bool:
        if not self.invited or self.copy_state is CopyState.DELETED:
            return False
        return self.role is Role.HOST or self.response != "decline"

    @property
    def shown_response(self) -> str:
        return DELETED_RESPONSE if self.copy_state is CopyState.DELETED else self.response


@dataclass(frozen=True)
class BookingDraft:
    """Everything a booking says, without its id: what the planner wants stored."""

    uid: str
    recurrence_key: str
    subject: str
    location: str
    start: datetime
    end: datetime
    timezone: str
    autocall: bool
    state: StoredState
    reason: str | None
    room: str | None
    organizer_email: str
    organizer_extension: str | None
    organizer_copy_seen: bool
    participants: tuple[Participant, ...] = ()
    unmatched: tuple[str, ...] = ()
    # Why an unmatched address is more than "not a PBX user" (a group too large to expand): (address, why).
    unmatched_reasons: tuple[tuple[str, str], ...] = ()
    private: bool = False  # a private or confidential meeting: `subject` is the placeholder

    @property
    def key(self) -> MeetingKey:
        return (self.uid, self.recurrence_key)


@dataclass(frozen=True)
class Booking:
    id: int
    draft: BookingDraft
    created_at: str = ""
    updated_at: str = ""  # when the booking last changed: copies older than this are stale evidence

    @property
    def key(self) -> MeetingKey:
        return self.draft.key

    def shown_state(self, now: datetime) -> ShownState:
        return shown_state(self.draft, now)


def shown_state(draft: BookingDraft, now: datetime) -> ShownState:
    if draft.state is StoredState.CANCELLED:
        return ShownState.CANCELLED
    if draft.state is StoredState.REJECTED:
        return ShownState.REJECTED
    if draft.end <= now:
        return ShownState.DONE
    if draft.start <= now:
        return ShownState.ACTIVE
    return ShownState.SCHEDULED


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CANCEL = "cancel"
    REJECT = "reject"


@dataclass(frozen=True)
class BookingAction:
    """Store `draft` (a new booking when `booking_id` is None) and record `notes` in its history."""

    kind: ActionKind
    booking_id: int | None
    draft: BookingDraft
    notes: tuple[str, ...]
