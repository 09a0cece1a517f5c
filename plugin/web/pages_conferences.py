"""*My conferences*: the user's bookings, a booking's page with its live room, and the host's controls.

The list and a booking's page render without script; the live room (static/conference.js) polls
`/conferences/{id}/room.json`, and without script the page offers a refresh link. Host actions are POSTs
(CSRF-checked by plugin.web.security), only for the organizer while the meeting runs, and each is written
to the booking's history (`pbxsync conferences`, the admin's bookings page) and the log. "Call again" counts
against the host's click-to-call limit (plugin.web.click_to_call.admit_call).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web

from pbxsync.plugin.autocall.store import call_states
from pbxsync.plugin.booking.model import Booking
from pbxsync.plugin.booking.pins import booking_pins
from pbxsync.plugin.booking.store import booking_by_id, bookings_of_extension, record_event
from pbxsync.plugin.web.auth import WebUser, require_user
from pbxsync.plugin.web.click_to_call import admit_call
from pbxsync.plugin.web.conference_view import ConferenceView, conference_view, is_host, is_member
from pbxsync.plugin.web.context import WebContext, web_context
from pbxsync.plugin.web.render import NavLink, render
from pbxsync.plugin.web.room import HOST_ACTIONS, host_action, room_view
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.web")

NAV = (NavLink("My conferences", "/my/conferences"),)
PAST_DAYS = 30  # how far back "past" reaches
POLL_SECONDS = 3


def routes() -> list[web.RouteDef]:
    return [web.get("/my/conferences", conferences_page), web.get(r"/conferences/{id:\d{1,12}}", conference_page),
            web.get(r"/conferences/{id:\d{1,12}}/room.json", room_json),
            web.post(r"/conferences/{id:\d{1,12}}/host", host_post)]


async def own_subject(store: Store, booking: Booking, mailbox: str) -> str | None:
    """The subject of the user's own synced copy of the meeting (a private meeting's real subject)."""
    draft = booking.draft
    async with store.conn.execute(
            "SELECT subject FROM occurrences WHERE mailbox = ? AND uid = ? AND "
            "(recurrence_id = ? OR (? = '' AND recurrence_id IS NULL)) ORDER BY id LIMIT 1",
            (mailbox, draft.uid, draft.recurrence_key, draft.recurrence_key)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def _views(ctx: WebContext, user: WebUser, bookings: list[Booking]) -> list[ConferenceView]:
    now = ctx.clock.now()
    calls = await call_states(ctx.store, [b.id for b in bookings])
    pins = await booking_pins(ctx.store, [b.id for b in bookings]) if bookings else {}
    config_user = ctx.config.user_by_extension(user.extension)
    mailbox = config_user.mailbox.lower() if config_user and config_user.email else ""
    views = []
    for b in bookings:
        subject = await own_subject(ctx.store, b, mailbox) if b.draft.private and mailbox else None
        views.append(conference_view(b, user.extension, now, pin=pins.get(b.id), calls=calls, own_subject=subject,
                                     dial_in_numbers=ctx.config.pbx.dial_in_numbers,
                                     dial_in_room=ctx.config.pbx.dial_in_room))
    return views


async def conferences_page(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    ctx = web_context(request)
    now = ctx.clock.now()
    bookings = [b for b in await bookings_of_extension(ctx.store, user.extension, now - timedelta(days=PAST_DAYS))
                if is_member(b, user.extension)]  # not one the organizer took them off
    views = await _views(ctx, user, bookings)
    current = [v for v in views if v.running or v.upcoming]
    past = [v for v in reversed(views) if v not in current]
    return render(request, "conferences.html", title="My conferences", current=current, past=past,
                  past_days=PAST_DAYS)


async def _booking_for(request: web.Request, user: WebUser) -> Booking:
    """The booking of the URL, if the user may see it (organizer, participant, or admin)."""
    booking = await booking_by_id(web_context(request).store, int(request.match_info["id"]))
    if booking is None:
        raise web.HTTPNotFound(text="There is no such conference.\n")
    if not is_member(booking, user.extension) and not user.is_admin:
        log.warning("web: extension %s refused conference %d (not theirs)", user.extension, booking.id)
        raise web.HTTPForbidden(text="This conference belongs to other people.\n")
    return booking


async def conference_page(request: web.Request, message: str = "", ok: bool = True,
                          status: int = 200) -> web.StreamResponse:
    user = require_user(request)
    ctx = web_context(request)
    booking = await _booking_for(request, user)
    (view,) = await _views(ctx, user, [booking])
    room = await room_view(ctx.ami.value, ctx.store, ctx.config, booking) if view.running else None
    return render(request, "conference.html", title=view.subject, c=view, live=room, message=message, ok=ok,
                  poll_seconds=POLL_SECONDS, status=status)


async def room_json(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    ctx = web_context(request)
    booking = await _booking_for(request, user)
    (view,) = await _views(ctx, user, [booking])
    room = await room_view(ctx.ami.value, ctx.store, ctx.config, booking) if view.running else None
    people = [{"extension": p.extension, "name": p.name, "response": p.response, "outcome": p.outcome,
               "attempts": p.attempts, "joined": p.joined} for p in view.participants]
    return web.json_response({"running": view.running, "state": view.state, "host": view.is_host,
                              "room": room.as_json() if room else None, "participants": people})


async def host_post(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    ctx = web_context(request)
    booking = await _booking_for(request, user)
    form = await request.post()
    action, target = str(form.get("action", "")), str(form.get("target", ""))[:200]
    if not is_host(booking, user.extension):
        log.warning("web: extension %s is not the host of conference %d", user.extension, booking.id)
        raise web.HTTPForbidden(text="Only the meeting's organizer can do that.\n")
    if action not in HOST_ACTIONS:
        return await conference_page(request, "That is not something a host can do.", False, 400)
    (view,) = await _views(ctx, user, [booking])
    if not view.running:
        return await conference_page(request, "The meeting is not running.", False, 409)
    if action == "call" and not admit_call(request.app, user.extension, ctx.clock.now().timestamp()):
        log.warning("web: conference %d: call again by %s refused: too many calls", booking.id, user.extension)
        return await conference_page(request, "Too many calls in a short time. Wait a minute, then try again.",
                                     False, 429)
    result = await host_action(ctx.ami.value, ctx.store, ctx.config, ctx.clock, booking, action, target)
    if result.audit:
        detail = f"host {user.extension} in the portal: {result.audit}"
        await record_event(ctx.store, booking.id, "host", detail, ctx.clock.now())
        log.info("web: conference %d: %s", booking.id, detail)
    return await conference_page(request, result.message, result.ok)

