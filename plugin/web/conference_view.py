"""What *My conferences* shows of a booking to one signed-in user: plain data, decided here.

Rules:
- A booking is the user's when they organize it or are an invited participant; an admin may read any
  booking, but without its PIN and without host controls.
- The dial-in number (the room) and the PIN are shown only to the organizer and the participants.
- A private meeting's subject is the placeholder for everybody, except the user whose own synced copy
  holds the real one (`own_subject`, read from their mailbox only).
- Participants carry their response and AUTOCALL's outcome in words; a rejected booking its reason.
- Only the organizer is the host: call a participant again, mute, kick, lock, end — while it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pbxsync.plugin.autocall.store import ParticipantCallState
from pbxsync.plugin.booking.dial_in import outside_dial_in
from pbxsync.plugin.booking.model import Booking, Role, ShownState

RESPONSE_WORDS = {"organizer": "Organizer", "accept": "Accepted", "tentative": "Tentative", "decline": "Declined",
                  "noresponse": "No answer yet", "unknown": "No answer yet", "deleted": "Deleted the meeting"}
OUTCOME_WORDS = {"pending": "Ringing", "answered": "Answered", "busy": "Busy", "no_answer": "No answer",
                 "congestion": "Network busy", "failed": "Call failed", "unknown": "Outcome unknown",
                 "not_sent": "Not called (phone system unreachable)", "cancelled": "Hung up: meeting cancelled"}
STATE_WORDS = {ShownState.SCHEDULED: "Upcoming", ShownState.ACTIVE: "Running now", ShownState.DONE: "Ended",
               ShownState.CANCELLED: "Cancelled", ShownState.REJECTED: "Not booked"}


@dataclass(frozen=True)
class PersonView:
    extension: str
    name: str
    host: bool
    response: str
    outcome: str  # "" when AUTOCALL never called them
    attempts: int
    joined: bool


@dataclass(frozen=True)
class ConferenceView:
    id: int
    subject: str
    when: str
    state: str
    running: bool
    upcoming: bool
    autocall: bool
    room: str  # "" when the viewer may not see it, or none was booked
    dial_in: tuple[str, ...]  # how to reach the room from outside ([pbx] dial_in_numbers); () when not shown
    pin: str  # "" when there is none or the viewer may not see it
    reason: str  # why it was not booked (or cancelled), in words
    is_host: bool
    participants: tuple[PersonView, ...]
    unmatched: int  # invitees who are no PBX user


def is_member(booking: Booking, extension: str) -> bool:
    draft = booking.draft
    return draft.organizer_extension == extension or any(
        p.extension == extension and p.invited for p in draft.participants)


def is_host(booking: Booking, extension: str) -> bool:
    return booking.draft.organizer_extension == extension


def when_text(booking: Booking) -> str:
    """In the PBX host's local time, as the office's phones and clocks show it."""
    start, end = booking.draft.start.astimezone(), booking.draft.end.astimezone()
    return f"{start:%a %d %b %Y, %H:%M}–{end:%H:%M} {start.tzname() or ''}".rstrip()


def conference_view(booking: Booking, viewer: str, now: datetime, *, pin: str | None,
                    calls: dict[tuple[int, str], ParticipantCallState], own_subject: str | None,
                    dial_in_numbers: Sequence[str] = (), dial_in_room: str = "dtmf") -> ConferenceView:
    """The booking as `viewer` (an extension) may see it; call only when `is_member` or for an admin."""
    draft = booking.draft
    member = is_member(booking, viewer)
    shown = booking.shown_state(now)
    people = []
    for p in draft.participants:
        if not p.invited:
            continue
        state = calls.get((booking.id, p.extension))
        people.append(PersonView(p.extension, p.name or p.extension, p.role is Role.HOST,
                                 RESPONSE_WORDS.get(p.shown_response.lower(), p.shown_response),
                                 OUTCOME_WORDS.get(state.outcome, state.outcome) if state and state.outcome else "",
                                 state.attempts if state else 0, bool(state and state.joined)))
    subject = own_subject if draft.private and own_subject else draft.subject
    return ConferenceView(
        id=booking.id, subject=subject, when=when_text(booking), state=STATE_WORDS[shown],
        running=shown is ShownState.ACTIVE, upcoming=shown is ShownState.SCHEDULED, autocall=draft.autocall,
        room=(draft.room or "") if member else "", pin=(pin or "") if member else "",
        dial_in=tuple(outside_dial_in(dial_in_numbers, draft.room, dial_in_room)) if member and draft.room else (),
        reason=draft.reason or "", is_host=is_host(booking, viewer) and shown is ShownState.ACTIVE,
        participants=tuple(people), unmatched=len(draft.unmatched))
