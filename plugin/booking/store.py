"""The bookings repository: reading synced occurrences and bookings, applying planner actions.

All writes of one reconcile happen in one store transaction. The query functions at the end are what
the daemon, AUTOCALL and FastAGI room admission call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import aiosqlite

from pbxsync.plugin.booking.model import (
    Booking,
    BookingAction,
    BookingDraft,
    CopyState,
    MailboxCopy,
    MailboxSync,
    Participant,
    Role,
    StoredState,
)
from pbxsync.sync.errors import StoreError
from pbxsync.sync.model import (
    Attendee,
    AttendeeKind,
    Folder,
    Occurrence,
    ResponseType,
    Sensitivity,
    parse_utc,
    utc_text,
)
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.bookings")

EVENTS_KEPT_PER_BOOKING = 50

_BOOKING_COLUMNS = ("id, uid, recurrence_key, subject, location, start_utc, end_utc, timezone, autocall, "
                    "state, reason, room, organizer_email, organizer_extension, organizer_copy_seen, "
                    "created_at, updated_at, private")


@dataclass(frozen=True)
class BookingEvent:
    booking_id: int
    at: str
    kind: str
    detail: str


# -- reading what the sync engine stored -------------------------------------------------------------

# Plain dicts, not Enum(value): every stored attendee of every copy passes here on each reconcile.
_KINDS = {k.value: k for k in AttendeeKind}
_RESPONSES = {r.value: r for r in ResponseType}


def _attendees(text: str, one: Callable[[object], str] = str) -> tuple[Attendee, ...]:
    """`one(value)` gives the string kept for a value (load_copies shares repeated ones)."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("attendees is not a list")
    found: list[Attendee] = []
    for item in data:
        if not isinstance(item, dict):
            raise ValueError("attendee is not an object")
        found.append(Attendee(
            email=one(item.get("email") or ""),
            name=one(item.get("name") or ""),
            kind=_KINDS.get(str(item.get("kind", "")), AttendeeKind.REQUIRED),
            response=_RESPONSES.get(str(item.get("response", "")), ResponseType.UNKNOWN),
        ))
    return tuple(found)


class StoredCopies(NamedTuple):
    """Every stored occurrence row that could be read, and the mailboxes with an unreadable row."""

    copies: list[MailboxCopy]
    broken_mailboxes: set[str]  # not to be trusted until their next good sync


async def load_copies(store: Store) -> StoredCopies:
    """Every stored occurrence row, and the mailboxes with an unreadable row (not to be trusted)."""
    copies: list[MailboxCopy] = []
    broken: set[str] = set()
    # Every copy of a meeting usually lists the same attendees: each distinct list is parsed once (a
    # 500-attendee meeting held by 20 synced calendars is one parse, not 20, on every reconcile). Kept
    # by a digest of the text, not the text: the texts would be the largest part of a reconcile's memory.
    lists: dict[bytes, tuple[Attendee, ...]] = {}
    # Values many rows share (mailboxes, time zones, locations, organizers, timestamps) are one string
    # each: every reconcile holds every copy at once, ~0.8 KB a copy less (the daemon's peak; see
    # benchmarks/bench_daemon_rss.py).
    shared: dict[str, str] = {}

    def one(value: object) -> str:
        text = str(value)
        return shared.setdefault(text, text)

    async with store.conn.execute(
        "SELECT mailbox, item_id, change_key, uid, recurrence_id, series_item_id, start_utc, end_utc, "
        "timezone, subject, location, organizer_email, organizer_name, attendees, is_cancelled, "
        "is_all_day, updated_at, sensitivity, my_response FROM occurrences ORDER BY id"
    ) as cur:
        async for row in cur:
            mailbox = one(str(row[0]).strip().lower())
            try:
                text = str(row[13])
                digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                attendees = lists.get(digest)
                if attendees is None:
                    attendees = lists[digest] = _attendees(text, one)
                occurrence = Occurrence(
                    item_id=str(row[1]), change_key=str(row[2]), uid=str(row[3]),
                    recurrence_id=parse_utc(row[4]) if row[4] else None, series_item_id=one(row[5]),
                    start=parse_utc(row[6]), end=parse_utc(row[7]), timezone=one(row[8]),
                    subject=str(row[9]), location=one(row[10]),
                    organizer_email=one(row[11]), organizer_name=one(row[12]),
                    attendees=attendees, is_cancelled=bool(row[14]), is_all_day=bool(row[15]),
                    sensitivity=Sensitivity(str(row[17])),
                    my_response=_RESPONSES.get(str(row[18]), ResponseType.UNKNOWN),
                )
            except (ValueError, TypeError) as exc:
                log.error("skipping unreadable occurrence %s of %s (%s); its calendar is not trusted "
                          "until the next good sync", row[1], mailbox, exc)
                broken.add(mailbox)
                continue
            copies.append(MailboxCopy(mailbox, occurrence, one(row[16])))
    return StoredCopies(copies, broken)


async def load_mailbox_syncs(store: Store) -> dict[str, MailboxSync]:
    """Per mailbox: trusted when its last calendar sync succeeded (a success and no error since)."""
    found: dict[str, MailboxSync] = {}
    async with store.conn.execute(
        "SELECT mailbox, last_success, last_error, window_start, window_end FROM folder_sync "
        "WHERE folder = ?", (Folder.CALENDAR.value,)
    ) as cur:
        async for mailbox, success, error, start, end in cur:
            key = str(mailbox).strip().lower()
            try:
                window = (parse_utc(start), parse_utc(end)) if start and end else (None, None)
            except ValueError:
                window = (None, None)
            found[key] = MailboxSync(key, trusted=bool(success) and error is None,
                                     window_start=window[0], window_end=window[1])
    return found


# -- reading bookings ------------------------------------------------------------------------------


def _draft(row: Sequence[Any], participants: tuple[Participant, ...],
           unmatched: Sequence[tuple[str, str]]) -> BookingDraft:
    return BookingDraft(
        uid=row[1], recurrence_key=row[2], subject=row[3], location=row[4],
        start=parse_utc(row[5]), end=parse_utc(row[6]), timezone=row[7], autocall=bool(row[8]),
        state=StoredState(row[9]), reason=row[10], room=row[11], organizer_email=row[12],
        organizer_extension=row[13], organizer_copy_seen=bool(row[14]),
        participants=participants, unmatched=tuple(a for a, _ in unmatched),
        unmatched_reasons=tuple((a, why) for a, why in unmatched if why), private=bool(row[17]),
    )


async def _bookings(store: Store, where: str, params: Sequence[object]) -> list[Booking]:
    async with store.conn.execute(
        f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE {where} ORDER BY start_utc, id", params
    ) as cur:
        rows = list(await cur.fetchall())
    if not rows:
        return []
    ids = json.dumps([r[0] for r in rows])
    people: dict[int, list[Participant]] = {}
    async with store.conn.execute(
        "SELECT booking_id, id, extension, email, name, role, response, invited, copy_state, via_group, "
        "forwarded FROM booking_participants WHERE booking_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY booking_id, position", (ids,)
    ) as cur:
        async for r in cur:
            people.setdefault(r[0], []).append(Participant(
                extension=r[2], email=r[3], name=r[4], role=Role(r[5]), response=r[6],
                invited=bool(r[7]), copy_state=CopyState(r[8]), id=r[1], via_group=r[9], forwarded=bool(r[10])))
    unmatched: dict[int, list[tuple[str, str]]] = {}
    async with store.conn.execute(
        "SELECT booking_id, address, reason FROM booking_unmatched WHERE booking_id IN "
        "(SELECT value FROM json_each(?)) ORDER BY booking_id, position", (ids,)
    ) as cur:
        async for booking_id, address, reason in cur:
            unmatched.setdefault(booking_id, []).append((address, reason))
    return [Booking(r[0], _draft(r, tuple(people.get(r[0], ())), tuple(unmatched.get(r[0], ()))),
                    created_at=r[15], updated_at=r[16]) for r in rows]


async def load_bookings_for_planning(store: Store, horizon: datetime, uids: Collection[str]) -> list[Booking]:
    """Bookings that can still matter: not ended before `horizon`, or of a meeting still synced."""
    return await _bookings(store, "end_utc > ? OR uid IN (SELECT value FROM json_each(?))",
                           (utc_text(horizon), json.dumps(sorted(uids))))


async def list_bookings(store: Store, now: datetime, include_all: bool = False) -> list[Booking]:
    """Upcoming and running bookings (and rejections) by start; `include_all` adds past and cancelled."""
    if include_all:
        return await _bookings(store, "1 = 1", ())
    return await _bookings(store, "end_utc > ? AND state <> 'cancelled'", (utc_text(now),))


async def bookings_of_extension(store: Store, extension: str, ended_after: datetime) -> list[Booking]:
    """Bookings (any state) that `extension` organizes or is a participant of, ending after `ended_after`."""
    return await _bookings(
        store, "end_utc > ? AND (organizer_extension = ? OR id IN "
               "(SELECT booking_id FROM booking_participants WHERE extension = ?))",
        (utc_text(ended_after), extension, extension))


async def booking_by_id(store: Store, booking_id: int) -> Booking | None:
    found = await _bookings(store, "id = ?", (booking_id,))
    return found[0] if found else None


async def active_booking_for_room(store: Store, room: str, now: datetime,
                                  early_join: timedelta = timedelta(0)) -> Booking | None:
    """The scheduled booking running in `room` at `now` (or starting within `early_join`), if any."""
    found = await _bookings(
        store, "state = 'scheduled' AND room = ? AND start_utc <= ? AND end_utc > ?",
        (room, utc_text(now + early_join), utc_text(now)))
    return found[0] if found else None


async def bookings_starting(store: Store, start: datetime, end: datetime) -> list[Booking]:
    """Scheduled bookings starting in [start, end): what a scheduler arms its AUTOCALL timers from."""
    return await _bookings(store, "state = 'scheduled' AND start_utc >= ? AND start_utc < ?",
                           (utc_text(start), utc_text(end)))


def participants_to_call(booking: Booking) -> list[Participant]:
    """Who AUTOCALL dials: invited, not declined, not having deleted the meeting; host included."""
    return [p for p in booking.draft.participants if p.call]


async def booking_history(store: Store, booking_id: int) -> list[BookingEvent]:
    async with store.conn.execute(
        "SELECT booking_id, at, kind, detail FROM booking_events WHERE booking_id = ? ORDER BY id",
        (booking_id,)
    ) as cur:
        return [BookingEvent(*row) async for row in cur]


# -- writing -------------------------------------------------------------------------------------


def _booking_values(draft: BookingDraft) -> tuple[object, ...]:
    return (draft.subject, draft.location, utc_text(draft.start), utc_text(draft.end), draft.timezone,
            int(draft.autocall), draft.state.value, draft.reason, draft.room, draft.organizer_email,
            draft.organizer_extension, int(draft.organizer_copy_seen), int(draft.private))


async def _write_people(conn: aiosqlite.Connection, booking_id: int, draft: BookingDraft) -> None:
    await conn.executemany(
        "INSERT INTO booking_participants (booking_id, extension, email, name, role, response, invited, "
        "copy_state, call, position, via_group, forwarded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (booking_id, extension) DO UPDATE SET email = excluded.email, name = excluded.name, "
        "role = excluded.role, response = excluded.response, invited = excluded.invited, "
        "copy_state = excluded.copy_state, call = excluded.call, position = excluded.position, "
        "via_group = excluded.via_group, forwarded = excluded.forwarded",
        [(booking_id, p.extension, p.email, p.name, p.role.value, p.response, int(p.invited),
          p.copy_state.value, int(p.call), i, p.via_group, int(p.forwarded)) for i, p in enumerate(draft.participants)])
    await conn.execute("DELETE FROM booking_unmatched WHERE booking_id = ?", (booking_id,))
    reasons = dict(draft.unmatched_reasons)
    await conn.executemany(
        "INSERT INTO booking_unmatched (booking_id, position, address, reason) VALUES (?, ?, ?, ?)",
        [(booking_id, i, a, reasons.get(a, "")) for i, a in enumerate(draft.unmatched)])


async def _record(conn: aiosqlite.Connection, booking_id: int, kind: str, notes: Iterable[str],
                  at: str) -> None:
    detail = "; ".join(notes)
    if not detail:
        return
    await conn.execute("INSERT INTO booking_events (booking_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                       (booking_id, at, str(kind), detail))
    await conn.execute(
        "DELETE FROM booking_events WHERE booking_id = ? AND id NOT IN (SELECT id FROM booking_events "
        "WHERE booking_id = ? ORDER BY id DESC LIMIT ?)", (booking_id, booking_id, EVENTS_KEPT_PER_BOOKING))


async def record_event(store: Store, booking_id: int, kind: str, detail: str, now: datetime) -> None:
    """One line in the booking's history (`booking_history`), e.g. what its host did in the portal."""
    async with store.transaction() as conn:
        await _record(conn, booking_id, kind, (detail,), utc_text(now))


async def write_actions(conn: aiosqlite.Connection, actions: Sequence[BookingAction], now: datetime) -> list[int]:
    """Apply the actions inside the caller's transaction; returns the booking ids touched, in order."""
    at = utc_text(now)
    touched: list[int] = []
    for action in actions:
        draft = action.draft
        if action.booking_id is None:
            cur = await conn.execute(
                "INSERT INTO bookings (subject, location, start_utc, end_utc, timezone, autocall, "
                "state, reason, room, organizer_email, organizer_extension, organizer_copy_seen, private, "
                "uid, recurrence_key, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_booking_values(draft), draft.uid, draft.recurrence_key, at, at))
            if cur.lastrowid is None:
                raise StoreError("insert into bookings returned no id")
            booking_id = cur.lastrowid
        else:
            booking_id = action.booking_id
            await conn.execute(
                "UPDATE bookings SET subject = ?, location = ?, start_utc = ?, end_utc = ?, "
                "timezone = ?, autocall = ?, state = ?, reason = ?, room = ?, organizer_email = ?, "
                "organizer_extension = ?, organizer_copy_seen = ?, private = ?, updated_at = ? WHERE id = ?",
                (*_booking_values(draft), at, booking_id))
        await _write_people(conn, booking_id, draft)
        await _record(conn, booking_id, action.kind, action.notes, at)
        touched.append(booking_id)
    return touched


async def apply_actions(store: Store, actions: Sequence[BookingAction], now: datetime) -> list[int]:
    """Apply every action in one transaction (all or nothing); returns the booking ids touched."""
    if not actions:
        return []
    try:
        async with store.transaction() as conn:
            return await write_actions(conn, actions, now)
    except sqlite3.Error as exc:
        raise StoreError(f"storing bookings failed: {exc}") from exc
