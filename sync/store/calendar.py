"""Calendar occurrences in the store: one row per mailbox copy of a meeting occurrence."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from pbxsync.sync.model import (
    Attendee,
    AttendeeKind,
    Occurrence,
    ResponseType,
    Sensitivity,
    parse_utc,
    show_as_from,
    utc_text,
)
from pbxsync.sync.plan import CalendarPlan, StoredOccurrenceRef
from pbxsync.sync.store.db import Store


@dataclass(frozen=True)
class StoredOccurrence:
    mailbox: str
    occurrence: Occurrence


def attendees_to_json(attendees: tuple[Attendee, ...]) -> str:
    return json.dumps([{"email": a.email, "name": a.name, "kind": a.kind.value, "response": a.response.value}
                       for a in attendees], ensure_ascii=False)


_KINDS = {k.value: k for k in AttendeeKind}  # dict look-ups, not Enum(value): every stored attendee passes here
_RESPONSES = {r.value: r for r in ResponseType}


def attendees_from_json(text: str) -> tuple[Attendee, ...]:
    try:
        return tuple(Attendee(str(a["email"]), str(a["name"]), _KINDS[a["kind"]], _RESPONSES[a["response"]])
                     for a in json.loads(text))
    except KeyError as exc:
        raise ValueError(f"stored attendee without a known {exc}") from None


async def occurrence_refs(store: Store, mailbox: str) -> dict[str, StoredOccurrenceRef]:
    async with store.conn.execute(
        "SELECT item_id, change_key, series_item_id, start_utc, end_utc FROM occurrences WHERE mailbox = ?",
        (mailbox,),
    ) as cur:
        return {str(i): StoredOccurrenceRef(str(i), str(ck), str(s), parse_utc(st), parse_utc(en))
                async for i, ck, s, st, en in cur}


async def apply_calendar_plan(conn: aiosqlite.Connection, mailbox: str, plan: CalendarPlan, now: datetime) -> None:
    """Write a plan; call inside `Store.transaction()`."""
    stamp = utc_text(now)
    await conn.executemany(
        """INSERT INTO occurrences (mailbox, item_id, change_key, uid, occurrence_key, recurrence_id,
                series_item_id, start_utc, end_utc, timezone, subject, location, organizer_email,
                organizer_name, attendees, is_cancelled, is_all_day, sensitivity, my_response, show_as, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (mailbox, item_id) DO UPDATE SET
               change_key = excluded.change_key, uid = excluded.uid, occurrence_key = excluded.occurrence_key,
               recurrence_id = excluded.recurrence_id, series_item_id = excluded.series_item_id,
               start_utc = excluded.start_utc, end_utc = excluded.end_utc, timezone = excluded.timezone,
               subject = excluded.subject, location = excluded.location,
               organizer_email = excluded.organizer_email, organizer_name = excluded.organizer_name,
               attendees = excluded.attendees, is_cancelled = excluded.is_cancelled,
               is_all_day = excluded.is_all_day, sensitivity = excluded.sensitivity,
               my_response = excluded.my_response, show_as = excluded.show_as,
               updated_at = excluded.updated_at""",
        [(mailbox, o.item_id, o.change_key, o.uid, o.occurrence_key,
          utc_text(o.recurrence_id) if o.recurrence_id else None, o.series_item_id,
          utc_text(o.start), utc_text(o.end), o.timezone, o.subject, o.location, o.organizer_email,
          o.organizer_name, attendees_to_json(o.attendees), int(o.is_cancelled), int(o.is_all_day),
          o.sensitivity.value, o.my_response.value, o.show_as.value, stamp)
         for o in (*plan.inserts, *plan.updates)],
    )
    await conn.executemany("DELETE FROM occurrences WHERE mailbox = ? AND item_id = ?",
                           [(mailbox, i) for i in plan.deletes])


_SELECT = """SELECT mailbox, item_id, change_key, uid, recurrence_id, series_item_id, start_utc, end_utc,
                    timezone, subject, location, organizer_email, organizer_name, attendees, is_cancelled,
                    is_all_day, sensitivity, my_response, show_as FROM occurrences"""


def _row_to_occurrence(row: tuple[object, ...]) -> StoredOccurrence:
    (mailbox, item_id, ck, uid, rid, series, start, end, tz, subject, location, org_email, org_name,
     attendees, cancelled, all_day, sensitivity, my_response, show_as) = row
    occ = Occurrence(
        item_id=str(item_id), change_key=str(ck), uid=str(uid), start=parse_utc(str(start)), end=parse_utc(str(end)),
        timezone=str(tz), recurrence_id=parse_utc(str(rid)) if rid else None, series_item_id=str(series),
        subject=str(subject), location=str(location), organizer_email=str(org_email),
        organizer_name=str(org_name), attendees=attendees_from_json(str(attendees)),
        is_cancelled=bool(cancelled), is_all_day=bool(all_day), sensitivity=Sensitivity(str(sensitivity)),
        my_response=ResponseType(str(my_response)), show_as=show_as_from(show_as),
    )
    return StoredOccurrence(str(mailbox), occ)


async def load_occurrences(store: Store, start: datetime | None = None, end: datetime | None = None,
                           mailbox: str | None = None) -> list[StoredOccurrence]:
    """Occurrences overlapping [start, end) (all when None), ordered by start."""
    clauses: list[str] = []
    args: list[object] = []
    if start is not None:
        clauses.append("end_utc >= ?")
        args.append(utc_text(start))
    if end is not None:
        clauses.append("start_utc < ?")
        args.append(utc_text(end))
    if mailbox is not None:
        clauses.append("mailbox = ?")
        args.append(mailbox)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    async with store.conn.execute(f"{_SELECT} {where} ORDER BY start_utc, uid, mailbox", args) as cur:
        rows = await cur.fetchall()
    return [_row_to_occurrence(tuple(r)) for r in rows]


async def occurrence_counts(store: Store) -> dict[str, int]:
    async with store.conn.execute("SELECT mailbox, count(*) FROM occurrences GROUP BY mailbox") as cur:
        return {str(m): int(n) async for m, n in cur}
