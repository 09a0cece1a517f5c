"""The booking planner: synced meeting copies + directory + existing bookings + now -> actions.

Pure: no IO, no clock. The rules (docs/meetings.md explains them for people):

- Copies are grouped by meeting key (UID, plus RecurrenceId for a series occurrence). The organizer's
  own copy is the truth; without it, the most recently stored copy is.
- A cancelled flag on any copy cancels, for good (Exchange cannot un-cancel a meeting).
- A missing copy only means something for a mailbox whose last calendar sync succeeded and whose window
  covers the meeting ("trusted"). The organizer's copy gone from a trusted calendar where it was seen
  before cancels the booking; an invitee's copy gone marks that invitee deleted (not called). Anything
  missing from an untrusted mailbox changes nothing: a failed fetch never cancels.
- Bookings that have ended are history and never change.
- A booking only keeps a room the config still allows (in `[pbx] rooms` or the organizer's room), even
  when its meeting is unchanged: when the admin takes its room away, it moves to a free allowed room at the
  next pass or is rejected with the reason (plugin/booking/rooms.py). A running booking keeps its room.
- Who takes part (groups, forwarded copies) is plugin/booking/participants.py; a private meeting's
  subject is replaced by a placeholder where the draft is made (plugin/booking/privacy.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pbxsync.plugin.booking.location import parse_location
from pbxsync.plugin.booking.model import (
    ActionKind,
    Booking,
    BookingAction,
    BookingDraft,
    CopyState,
    MailboxCopy,
    MailboxSync,
    MeetingKey,
    Role,
    StoredState,
    meeting_key,
)
from pbxsync.plugin.booking.participants import ParticipantRules
from pbxsync.plugin.booking.privacy import booking_subject, is_private
from pbxsync.plugin.booking.rooms import RoomRequest, assign_rooms
from pbxsync.plugin.directory import Directory, DirectoryEntry
from pbxsync.sync.model import GroupMembers, Occurrence, utc_text

CANCELLED_IN_EXCHANGE = "cancelled by the organizer in Exchange"
ORGANIZER_DELETED = "deleted from the organizer's calendar (or moved out of the synced window)"
GONE_EVERYWHERE = "gone from every synced calendar that held it (the organizer's calendar is not synced)"
NOT_A_CONFERENCE = "the location no longer has an entry starting with PBX"
ALL_DAY = "all-day events are not booked: give the meeting a start and an end time"
ENDS_BEFORE_START = "the meeting ends before it starts"
NO_DURATION = "the meeting has no duration (it ends when it starts)"
NO_ORGANIZER = "the meeting has no organizer e-mail address"
MAX_NOTES = 12  # history lines per change; 5,000 new invitees are summarized


def organizer_not_a_user(email: str) -> str:
    return f"the organizer {email} is not a PBX user"


@dataclass(frozen=True)
class _Candidate:
    draft: BookingDraft
    booking: Booking | None
    wants_room: bool  # a scheduled booking (or one that would be, given a free room)
    withdrawn_note: str | None = None  # why it lost its room: the admin took the room away


class _Planner:
    def __init__(self, mailboxes: Mapping[str, MailboxSync], directory: Directory, now: datetime,
                 groups: Mapping[str, GroupMembers], max_group_members: int) -> None:
        self.mailboxes = mailboxes
        self.directory = directory
        self.now = now
        self.rules = ParticipantRules(directory, self.sync_of, groups, max_group_members)

    def sync_of(self, entry: DirectoryEntry | None) -> MailboxSync | None:
        """The sync status of a PBX user's calendar, or None when it is not synced at all."""
        if entry is None or not entry.sync_calendar or not entry.mailbox:
            return None
        return self.mailboxes.get(entry.mailbox, MailboxSync(entry.mailbox, trusted=False))

    # -- one meeting ---------------------------------------------------------------------------------

    def plan_meeting(self, copies: list[MailboxCopy], booking: Booking | None) -> _Candidate | None:
        """What this meeting's booking should become; None = nothing to store."""
        if not copies:
            return self._gone(booking) if booking else None
        organizer = self._organizer(copies)
        held_by = {c.mailbox for c in copies}
        org_sync = self.sync_of(organizer)
        organizer_copy = next((c for c in copies if organizer and c.mailbox == organizer.mailbox), None)
        if any(c.occurrence.is_cancelled for c in copies):
            return self._cancel(booking, CANCELLED_IN_EXCHANGE)
        if booking and booking.draft.reason == CANCELLED_IN_EXCHANGE:
            return None  # final: a stale copy elsewhere must not bring it back
        if (organizer_copy is None and org_sync is not None and booking is not None
                and booking.draft.organizer_copy_seen):
            if org_sync.covers(booking.draft.start, booking.draft.end):
                return self._cancel(booking, ORGANIZER_DELETED)
            return None  # the organizer's calendar did not answer: trust nothing else about it
        if organizer_copy is None and booking is not None and all(c.updated_at < booking.updated_at for c in copies):
            # Only attendee copies, all older than what the booking already reflects: one of them cannot
            # move or cancel it (an attendee's deletion only drops that attendee), so only the copy
            # states are brought up to date.
            return self._copy_states_only(booking, held_by)
        truth = (organizer_copy or max(copies, key=lambda c: (c.updated_at, c.mailbox))).occurrence
        request = parse_location(truth.location)
        if request is None:
            return self._cancel(booking, NOT_A_CONFERENCE) if booking else None
        if booking is None and max(truth.start, truth.end) <= self.now:
            return None  # never booked and already over: nothing to do
        people = self.rules.people(truth, organizer, copies, booking)
        reason = self._rejection(truth, organizer)
        draft = BookingDraft(
            uid=meeting_key(truth)[0],
            recurrence_key=meeting_key(truth)[1],
            subject=booking_subject(truth),  # the one place a booking's subject is set (plugin/booking/privacy.py)
            location=truth.location,
            start=truth.start,
            end=truth.end,
            timezone=truth.timezone,
            autocall=request.autocall,
            state=StoredState.REJECTED if reason else StoredState.SCHEDULED,
            reason=reason,
            room=booking.draft.room if booking else None,
            organizer_email=self.directory.smtp(truth.organizer_email),
            organizer_extension=organizer.extension if organizer else None,
            organizer_copy_seen=organizer_copy is not None or bool(booking and booking.draft.organizer_copy_seen),
            participants=people.participants,
            unmatched=people.unmatched,
            unmatched_reasons=people.unmatched_reasons,
            private=is_private(truth),
        )
        return _Candidate(draft, booking, wants_room=reason is None)

    def _copy_states_only(self, booking: Booking, held_by: set[str]) -> _Candidate | None:
        draft = booking.draft
        if draft.state is StoredState.CANCELLED:
            return None  # nobody is called for it; a cancellation keeps the participants as they were
        people = []
        for p in draft.participants:
            entry = self.directory.by_extension(p.extension)
            state = (self.rules.copy_state(entry, draft.start, draft.end, held_by, p)
                     if entry is not None and p.role is not Role.HOST else p.copy_state)
            people.append(replace(p, copy_state=state))
        if tuple(people) == draft.participants:
            return None
        return _Candidate(replace(draft, participants=tuple(people)), booking,
                          wants_room=draft.state is StoredState.SCHEDULED)

    def _organizer(self, copies: list[MailboxCopy]) -> DirectoryEntry | None:
        for copy in sorted(copies, key=lambda c: c.mailbox):
            if copy.occurrence.organizer_email.strip():
                return self.directory.match(copy.occurrence.organizer_email)
        return None

    def _gone(self, booking: Booking) -> _Candidate | None:
        """No synced calendar holds the meeting any more. Cancel only on trustworthy evidence."""
        draft = booking.draft
        if draft.state is StoredState.CANCELLED:
            return None
        organizer = self.directory.match(draft.organizer_email)
        org_sync = self.sync_of(organizer)
        if org_sync is not None:
            if draft.organizer_copy_seen and org_sync.covers(draft.start, draft.end):
                return self._cancel(booking, ORGANIZER_DELETED)
            return None
        holders = [self.sync_of(self.directory.by_extension(p.extension))
                   for p in draft.participants if p.copy_state is not CopyState.UNKNOWN]
        if holders and all(h is not None and h.covers(draft.start, draft.end) for h in holders):
            return self._cancel(booking, GONE_EVERYWHERE)
        return None

    def _cancel(self, booking: Booking | None, reason: str) -> _Candidate | None:
        if booking is None or booking.draft.state is StoredState.CANCELLED:
            return None
        return _Candidate(replace(booking.draft, state=StoredState.CANCELLED, reason=reason), booking, False)

    def _rejection(self, truth: Occurrence, organizer: DirectoryEntry | None) -> str | None:
        if truth.is_all_day:
            return ALL_DAY
        if truth.end < truth.start:
            return ENDS_BEFORE_START
        if truth.end == truth.start:
            return NO_DURATION
        if not truth.organizer_email.strip():
            return NO_ORGANIZER
        if organizer is None:
            return organizer_not_a_user(self.directory.smtp(truth.organizer_email))
        return None


def _room_order(candidate: _Candidate, now: datetime) -> tuple[int, int, str, str, str]:
    booking = candidate.booking
    if booking is not None:
        held = booking.draft.state is StoredState.SCHEDULED and booking.draft.room is not None
        tier = 0 if held and booking.draft.start <= now else 1 if held else 2
        return (tier, booking.id, "", "", "")
    draft = candidate.draft
    return (3, 0, utc_text(draft.start), draft.uid, draft.recurrence_key)


def _label(candidate: _Candidate) -> str:
    # No booking id here: a new booking has none yet, and the reason must not change once it gets one.
    draft = candidate.draft
    return f'"{draft.subject[:60]}" of {draft.organizer_extension} ({_span(draft)})'


def plan_bookings(
    copies: Sequence[MailboxCopy],
    mailboxes: Mapping[str, MailboxSync],
    directory: Directory,
    existing: Sequence[Booking],
    rooms: Sequence[str],
    now: datetime,
    groups: Mapping[str, GroupMembers] | None = None,
    max_group_members: int = 200,
) -> list[BookingAction]:
    """The actions that bring `existing` in line with the synced meetings, in a deterministic order.

    `copies` from mailboxes that are not calendar-synced PBX users are ignored (a removed user's stale
    rows must not keep meetings alive). `mailboxes` says which calendars are trusted and over which window.
    `groups` are the known invited groups by address (plugin/booking/groups.py).
    """
    planner = _Planner(mailboxes, directory, now, groups or {}, max_group_members)
    synced = directory.calendar_mailboxes()
    grouped: dict[MeetingKey, list[MailboxCopy]] = defaultdict(list)
    for copy in copies:
        if copy.mailbox in synced:
            grouped[meeting_key(copy.occurrence)].append(copy)
    by_key = {b.key: b for b in existing}

    candidates: list[_Candidate] = []
    for key in sorted(set(grouped) | set(by_key)):
        booking = by_key.get(key)
        if booking is not None and booking.draft.end <= now:
            # History never changes; a past scheduled booking still holds its room for overlap checks.
            if booking.draft.state is StoredState.SCHEDULED and booking.draft.room:
                candidates.append(_Candidate(booking.draft, booking, wants_room=True))
            continue
        planned = planner.plan_meeting(grouped.get(key, []), booking)
        if planned is not None:
            candidates.append(planned)
        elif booking is not None:
            # Unchanged: a scheduled booking keeps competing for (and normally keeping) its room.
            wants = booking.draft.state is StoredState.SCHEDULED
            candidates.append(_Candidate(booking.draft, booking, wants_room=wants))

    final = _with_rooms(candidates, rooms, directory, now)
    actions: list[BookingAction] = []
    for candidate in final:
        action = _action(candidate)
        if action is not None:
            actions.append(action)
    return actions


def _with_rooms(candidates: list[_Candidate], pool: Sequence[str], directory: Directory,
                now: datetime) -> list[_Candidate]:
    """Give every booking that wants a room one, or turn it into a rejection with the conflict."""
    wanting = sorted((c for c in candidates if c.wants_room), key=lambda c: _room_order(c, now))
    requests = []
    for c in wanting:
        organizer = directory.by_extension(c.draft.organizer_extension or "")
        requests.append(RoomRequest(
            label=_label(c),
            start=c.draft.start,
            end=c.draft.end,
            preferred_room=organizer.room if organizer else "",
            current_room=c.booking.draft.room if c.booking else None,
            pinned=_room_order(c, now)[0] == 0,
        ))
    placed: dict[int, _Candidate] = {}
    for c, choice in zip(wanting, assign_rooms(requests, pool), strict=True):
        if choice.room is not None:
            draft = replace(c.draft, room=choice.room, state=StoredState.SCHEDULED, reason=None)
        else:
            draft = replace(c.draft, room=None, state=StoredState.REJECTED, reason=choice.conflict)
        note = (f"room {choice.withdrawn} is no longer in [pbx] rooms or the organizer's room"
                if choice.withdrawn else None)
        placed[id(c)] = replace(c, draft=draft, withdrawn_note=note)
    existing = sorted((placed.get(id(c), c) for c in candidates if c.booking is not None),
                      key=lambda c: c.booking.id if c.booking else 0)
    # New bookings are created in room-priority order, so their ids keep that order next time.
    created = [placed.get(id(c), c) for c in sorted(
        (c for c in candidates if c.booking is None), key=lambda c: _room_order(c, now))]
    return existing + created


def _action(candidate: _Candidate) -> BookingAction | None:
    draft, booking = candidate.draft, candidate.booking
    if booking is None:
        if draft.state is StoredState.SCHEDULED:
            return BookingAction(ActionKind.CREATE, None, draft, (_booked_note(draft),))
        if draft.state is StoredState.REJECTED:
            return BookingAction(ActionKind.REJECT, None, draft, (f"rejected: {draft.reason}",))
        return None
    old = booking.draft
    if draft == old:
        return None
    if draft.state is StoredState.CANCELLED:
        return BookingAction(ActionKind.CANCEL, booking.id, draft, (f"cancelled: {draft.reason}",))
    notes = describe_changes(old, draft)
    if candidate.withdrawn_note:
        notes = (candidate.withdrawn_note, *notes)
    if draft.state is StoredState.REJECTED and old.state is not StoredState.REJECTED:
        return BookingAction(ActionKind.REJECT, booking.id, draft, notes)
    return BookingAction(ActionKind.UPDATE, booking.id, draft, notes)


def _booked_note(draft: BookingDraft) -> str:
    called = sum(1 for p in draft.participants if p.call)
    mode = "AUTOCALL" if draft.autocall else "dial-in"
    return (f"booked in room {draft.room} ({mode}), {called} to call, "
            f"{len(draft.unmatched)} unmatched")


def _span(draft: BookingDraft) -> str:
    return f"{utc_text(draft.start)}..{utc_text(draft.end)}"


def describe_changes(old: BookingDraft, new: BookingDraft) -> tuple[str, ...]:
    """Short, human history lines for what changed; bookkeeping-only changes give none."""
    notes: list[str] = []
    if old.state is not new.state:
        if new.state is StoredState.REJECTED:
            notes.append(f"rejected: {new.reason}")
        elif new.state is StoredState.SCHEDULED:
            notes.append(f"booked again (was {old.state.value}: {old.reason})")
    elif new.state is StoredState.REJECTED and old.reason != new.reason:
        notes.append(f"rejected: {new.reason}")
    if (old.start, old.end) != (new.start, new.end):
        notes.append(f"moved from {_span(old)} to {_span(new)}")
    if old.room != new.room and new.room is not None and old.state is new.state:
        notes.append(f"room {old.room} -> {new.room}")
    if old.subject != new.subject:
        notes.append("subject changed")
    if old.location != new.location:
        notes.append(f"location changed to {new.location[:80]!r}")
    if old.autocall != new.autocall:
        notes.append("AUTOCALL on" if new.autocall else "AUTOCALL off")
    if old.organizer_extension != new.organizer_extension:
        notes.append(f"organizer extension {old.organizer_extension} -> {new.organizer_extension}")
    before = {p.extension: p for p in old.participants}
    for p in new.participants:
        was = before.get(p.extension)
        if p.invited and (was is None or not was.invited):
            notes.append(f"{p.extension} invited")
        elif not p.invited and was is not None and was.invited:
            notes.append(f"{p.extension} no longer invited")
        elif was is not None and p.call != was.call:
            notes.append(f"{p.extension} {'will' if p.call else 'will not'} be called ({p.shown_response})")
    known = set(old.unmatched)
    added = [a for a in new.unmatched if a not in known]
    if added:
        notes.append(f"{len(added)} new unmatched invitee(s)")
    if len(notes) > MAX_NOTES:
        notes = [*notes[:MAX_NOTES - 1], f"... and {len(notes) - MAX_NOTES + 1} more changes"]
    return tuple(notes)
