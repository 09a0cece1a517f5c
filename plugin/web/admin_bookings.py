"""Admin: *Bookings* and each booking's audit trail.

The list is `pbxsync conferences` (plugin.booking.store.list_bookings; `?show=all` adds past and
cancelled ones, like `--all`). A booking's page tells what happened when, oldest first: the booking
events the planner recorded (booked, moved, room changed, rejected, cancelled, with its notes) merged
with every AUTOCALL attempt (called, its outcome, joined the room). `audit_trail` does the merging over
plain rows. A private meeting's subject is already the placeholder in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from pbxsync.plugin.autocall.store import call_states
from pbxsync.plugin.booking.store import BookingEvent, booking_by_id, booking_history, list_bookings
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.pages_admin import ADMIN_NAV, admin_only
from pbxsync.plugin.web.render import render
from pbxsync.sync.model import parse_utc
from pbxsync.sync.store.db import Store

SHOWN = 300  # a page lists at most this many bookings (the newest first when all are asked for)
EVENT_WORDS = {"create": "booked", "update": "changed", "cancel": "cancelled", "reject": "rejected"}
OUTCOME_WORDS = {"answered": "answered", "busy": "busy", "no_answer": "no answer", "congestion": "congestion",
                 "failed": "failed", "unknown": "outcome unknown (the agent stopped while it rang)",
                 "not_sent": "not sent", "cancelled": "hung up: the meeting was cancelled", "pending": "ringing"}


@dataclass(frozen=True)
class Attempt:
    extension: str
    attempt: int
    outcome: str
    reason: str | None
    detail: str | None
    created_at: datetime
    finished_at: datetime | None
    joined_at: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    what: str  # booked | changed | cancelled | rejected | called | answered ... | joined
    detail: str


def _maybe(text: str | None) -> datetime | None:
    return parse_utc(text) if text else None


async def attempts_of(store: Store, booking_id: int) -> list[Attempt]:
    async with store.conn.execute(
        "SELECT extension, attempt, outcome, reason, detail, created_at, finished_at, joined_at "
        "FROM autocall_attempts WHERE booking_id = ? ORDER BY id", (booking_id,)
    ) as cur:
        return [Attempt(str(r[0]), int(r[1]), str(r[2]), r[3], r[4], parse_utc(r[5]), _maybe(r[6]), _maybe(r[7]))
                async for r in cur]


def audit_trail(events: Sequence[BookingEvent], attempts: Sequence[Attempt]) -> list[AuditEntry]:
    """What happened to a booking, oldest first. Instants are whole seconds, so within one second the
    order is by attempt number (a retry follows the outcome that caused it), then booking event, call,
    outcome, join (a call's outcome never reads before the call)."""
    entries: list[tuple[datetime, int, int, AuditEntry]] = []
    for e in events:
        at = parse_utc(e.at)
        entries.append((at, 0, 0, AuditEntry(at, EVENT_WORDS.get(e.kind, e.kind), e.detail)))
    for a in attempts:
        who = f"{a.extension}, attempt {a.attempt}"
        entries.append((a.created_at, a.attempt, 1, AuditEntry(a.created_at, "called", who)))
        if a.finished_at is not None:
            words = OUTCOME_WORDS.get(a.outcome, a.outcome)
            extra = f" ({a.detail})" if a.detail and a.outcome != "answered" else ""
            entries.append((a.finished_at, a.attempt, 2, AuditEntry(a.finished_at, words, who + extra)))
        if a.joined_at is not None:
            entries.append((a.joined_at, a.attempt, 3, AuditEntry(a.joined_at, "joined the room", who)))
    entries.sort(key=lambda item: item[:3])
    return [entry for *_, entry in entries]


async def bookings_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    ctx = web_context(request)
    now = ctx.clock.now()
    show_all = request.query.get("show") == "all"
    bookings = await list_bookings(ctx.store, now, show_all)
    if show_all:
        bookings = sorted(bookings, key=lambda b: b.draft.start, reverse=True)
    total = len(bookings)
    bookings = bookings[:SHOWN]
    calls = await call_states(ctx.store, [b.id for b in bookings])
    answered = {b.id: sum(1 for (bid, _), s in calls.items() if bid == b.id and s.outcome == "answered")
                for b in bookings}
    return render(request, "admin_bookings.html", title="Bookings", admin_nav=ADMIN_NAV, bookings=bookings,
                  now=now, show_all=show_all, total=total, shown=SHOWN, answered=answered)


async def booking_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    ctx = web_context(request)
    raw_id = request.match_info["booking_id"]
    booking = await booking_by_id(ctx.store, int(raw_id)) if raw_id.isdigit() and len(raw_id) < 12 else None
    if booking is None:
        raise web.HTTPNotFound(text="No such booking.\n")
    calls = await call_states(ctx.store, [booking.id])
    trail = audit_trail(await booking_history(ctx.store, booking.id), await attempts_of(ctx.store, booking.id))
    return render(request, "admin_booking.html", title=f"Booking {booking.id}", admin_nav=ADMIN_NAV,
                  booking=booking, state=booking.shown_state(ctx.clock.now()).value,
                  calls={ext: s for (_, ext), s in calls.items()}, trail=trail, outcome_words=OUTCOME_WORDS)


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/bookings", bookings_page), web.get("/admin/bookings/{booking_id}", booking_page)]
