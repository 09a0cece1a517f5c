"""`pbxsync conferences [--json] [--all]`: the conference bookings made from Exchange meetings.

The JSON form is a contract (scripts and the AUTOCALL tests read it): a list of objects with `id`, `uid`,
`subject`, `private`, `room`, `start`, `end`, `autocall`, `state`, `organizer`, `participants`, `unmatched`,
`unmatched_reasons`, `reason`, and `pin` (null unless `[conference] pins` is on). Each participant carries
`via_group` (the invited group that brought them in, else null), `forwarded` (in only through their own
forwarded copy), `outcome` (the last AUTOCALL attempt's outcome: answered, busy, no_answer, congestion,
failed, unknown, pending; null when never called) and `autocall` (attempts, joined, last_attempt_at; null
when never called). A private meeting's `subject` is the placeholder "Private meeting" (set once, where the
booking is drafted: plugin/booking/privacy.py). `notices` lists the notices to the organizer about the
booking (plugin/notices): `reason` ("rejected:no_room", ...), `state` (pending, sent, obsolete, abandoned),
`attempts`, `next_attempt_at`, `last_error`. `write_back` is the "Join by phone" block in the organizer's
meeting (state, error, attempts, next_attempt_at; null when never looked at).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pbxsync.plugin.autocall.store import ParticipantCallState, call_states
from pbxsync.plugin.booking.model import Booking, BookingDraft
from pbxsync.plugin.booking.pins import booking_pins
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.commands.common import config_from, utc_now
from pbxsync.plugin.notices.plan import NoticeRow
from pbxsync.plugin.notices.store import notices_of
from pbxsync.plugin.writeback.store import records_for, write_back_cell, write_back_json
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "conferences", help="list conference bookings made from meetings",
        description="Conference bookings made from Exchange meetings whose Location starts with PBX. "
        "Shows upcoming and running bookings and rejections by default.")
    parser.add_argument("--json", action="store_true", help="print the bookings as JSON (a stable contract)")
    parser.add_argument("--all", action="store_true", help="include past and cancelled bookings")
    parser.set_defaults(handler=run)


def conference_json(booking: Booking, now: datetime,
                    calls: Mapping[tuple[int, str], ParticipantCallState] | None = None,
                    pin: str | None = None, notices: Sequence[NoticeRow] = ()) -> dict[str, Any]:
    draft = booking.draft
    calls = calls or {}

    def call_state(extension: str) -> ParticipantCallState | None:
        return calls.get((booking.id, extension))

    return {
        "id": booking.id,
        "uid": draft.uid,
        "subject": draft.subject,
        "private": draft.private,
        "room": draft.room,
        "start": utc_text(draft.start),
        "end": utc_text(draft.end),
        "autocall": draft.autocall,
        "state": booking.shown_state(now).value,
        "organizer": {"email": draft.organizer_email, "extension": draft.organizer_extension},
        "participants": [
            {"extension": p.extension, "email": p.email, "name": p.name, "response": p.shown_response,
             "call": p.call, "via_group": p.via_group or None, "forwarded": p.forwarded,
             **_outcome_json(call_state(p.extension))}
            for p in draft.participants if p.invited
        ],
        "unmatched": list(draft.unmatched),
        "unmatched_reasons": dict(draft.unmatched_reasons),
        "reason": draft.reason,
        "pin": pin,
        "notices": [notice_json(n) for n in notices],
    }


def notice_json(notice: NoticeRow) -> dict[str, Any]:
    return {"reason": notice.reason, "state": notice.state.value, "attempts": notice.attempts,
            "next_attempt_at": utc_text(notice.next_attempt_at) if notice.next_attempt_at else None,
            "last_error": notice.last_error}


def _notice_line(notice: NoticeRow) -> str:
    error = f": {_printable(notice.last_error, 120)}" if notice.last_error else ""
    return f"notice {notice.reason}: {notice.state.value} ({notice.attempts} attempt(s)){error}"


def _outcome_json(state: ParticipantCallState | None) -> dict[str, Any]:
    if state is None:
        return {"outcome": None, "autocall": None}
    return {"outcome": state.outcome or None, "autocall": state.as_json()}


def _printable(text: str, width: int) -> str:
    clean = "".join(ch if ch.isprintable() else " " for ch in text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def unmatched_lines(draft: BookingDraft, shown: int = 3) -> list[str]:
    """The unmatched invitees in a line or two: a count and the first few addresses (a meeting with 480
    guests must not print 480 lines), then any that have a reason of their own (a group too large)."""
    if not draft.unmatched:
        return []
    count = len(draft.unmatched)
    listed = ", ".join(_printable(a, 60) for a in draft.unmatched[:shown])
    more = f" … and {count - shown} more" if count > shown else ""
    lines = [f"unmatched: {count} guest{'s' if count != 1 else ''} ({listed}{more})"]
    lines += [f"unmatched {_printable(a, 60)}: {_printable(why, 160)}" for a, why in draft.unmatched_reasons]
    return lines


def render_table(bookings: Sequence[Booking], now: datetime,
                 notices: Mapping[int, Sequence[NoticeRow]] | None = None,
                 write_backs: Mapping[int, dict[str, Any]] | None = None) -> str:
    """`write_backs` (booking id -> write_back_json): adds the JOIN BLOCK column ([meetings] write_back on)."""
    if not bookings:
        return "no conference bookings"
    header = ("ID", "STATE", "START (UTC)", "END (UTC)", "ROOM", "MODE", "ORGANIZER", "CALL", "UNMATCHED",
              "SUBJECT") + (("JOIN BLOCK",) if write_backs is not None else ())
    rows: list[tuple[str, ...]] = []
    notes: dict[int, list[str]] = {}
    for b in bookings:
        d = b.draft
        invited = [p for p in d.participants if p.invited]
        rows.append((
            str(b.id), b.shown_state(now).value, _when(d.start), _when(d.end), d.room or "-",
            "autocall" if d.autocall else "dial-in",
            _printable(d.organizer_extension or d.organizer_email or "-", 32),
            f"{sum(p.call for p in invited)}/{len(invited)}", str(len(d.unmatched)), _printable(d.subject, 40),
        ) + ((write_back_cell(write_backs.get(b.id)),) if write_backs is not None else ()))
        notes[len(rows) - 1] = ([f"reason: {_printable(d.reason, 200)}"] if d.reason else []) + unmatched_lines(d)
        notes[len(rows) - 1] += [_notice_line(n) for n in (notices or {}).get(b.id, ())]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        lines.extend(f"    {note}" for note in notes[i])
    return "\n".join(lines)


async def show_conferences(database: str, as_json: bool, include_all: bool, now: datetime,
                           write_back: bool = False) -> str:
    store = await open_store(database)
    try:
        bookings = await list_bookings(store, now, include_all)
        ids = [b.id for b in bookings]
        calls = await call_states(store, ids)
        pins = await booking_pins(store, ids)
        notices = await notices_of(store, ids)
        write_backs = {i: write_back_json(r) for i, r in (await records_for(store, ids)).items()}
    finally:
        await store.close()
    if as_json:
        return json.dumps([{**conference_json(b, now, calls, pins.get(b.id), notices.get(b.id, ())),
                            "write_back": write_backs.get(b.id)} for b in bookings], indent=2, ensure_ascii=False)
    return render_table(bookings, now, notices, write_backs if write_back else None)


async def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    print(await show_conferences(config.database, args.json, args.all, utc_now(), config.meetings.write_back))
    return 0
