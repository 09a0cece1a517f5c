"""Admin: *Users* (match status, last sync per folder, errors in words, sync lag) and *Sync lag*.

The data is `pbxsync users`' own (plugin.users_report); this module only turns it into rows, sorts and
filters them by query parameters (`?q=…&status=error&sort=lag&order=desc&page=2`, 50 rows a page), so
the table works without JavaScript and a sorted view can be bookmarked. Sync lag = now − last success of a folder; a
user's lag is their worst enabled folder's; a folder never synced has no lag and sorts as the worst.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web

from pbxsync.plugin.users_report import UserReport, user_reports
from pbxsync.plugin.web.chart import horizontal_bars
from pbxsync.plugin.web.context import WebContext, web_context
from pbxsync.plugin.web.pages_admin import ADMIN_NAV, admin_only
from pbxsync.plugin.web.render import render
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import FolderState
from pbxsync.sync.store.skipped import SkipSummary

log = logging.getLogger("pbxsync.web")

# What a folder error kind (sync.engine.error_kind) means, for someone who has not read the code.
ERROR_WORDS = {
    "auth": "Exchange refused pbxsync's sign-in: check the service account's password or the app's secret",
    "access": "pbxsync may not open this mailbox: check impersonation or the application access policy",
    "busy": "Exchange was busy and asked pbxsync to wait (throttling); the next pass tries again",
    "data": "Exchange sent something pbxsync could not read",
    "source": "Exchange could not be reached or answered with an error",
    "store": "the local database could not store what was fetched",
    "internal": "pbxsync itself failed (see the agent log)",
}
STATUS_ORDER = {"error": 0, "never": 1, "conflict": 2, "ok": 3, "off": 4}  # worst first
SORTS = ("extension", "name", "status", "lag")
STATUSES = ("error", "never", "conflict", "ok", "off")
LAG_COLOUR = "#0b5cad"  # the portal's accent: 6.4:1 on white
PER_PAGE = 50  # rows a page renders: a thousand users are twenty pages, not one slow one
CHART_ROWS = 25


@dataclass(frozen=True)
class FolderRow:
    folder: str  # contacts | calendar
    status: str  # ok | error | never | off
    last_success: datetime | None
    lag: timedelta | None  # None: off, or never succeeded
    error: str  # in words, with Exchange's own text after it; "" when fine
    skipped: int


@dataclass(frozen=True)
class UserRow:
    extension: str
    name: str
    mailbox: str
    room: str
    match: str  # ok | conflict
    problems: tuple[str, ...]
    folders: tuple[FolderRow, ...]
    status: str  # the worst of the folders', or conflict
    lag: timedelta | None  # the worst enabled folder's; None when one never succeeded or all are off


def error_in_words(kind: str | None, message: str | None) -> str:
    words = ERROR_WORDS.get(kind or "", "the last sync failed")
    return f"{words} ({message})" if message else words


def folder_row(folder: str, state: FolderState | None, skipped: SkipSummary | None, enabled: bool,
               now: datetime) -> FolderRow:
    if not enabled:
        return FolderRow(folder, "off", None, None, "", 0)
    if state is None or state.last_attempt is None:
        return FolderRow(folder, "never", None, None, "", 0)
    success = state.last_success
    lag = max(now - success, timedelta(0)) if success else None
    count = skipped.count if skipped else 0
    if state.last_error:
        return FolderRow(folder, "error", success, lag, error_in_words(state.error_kind, state.last_error), count)
    return FolderRow(folder, "ok", success, lag, "", count)


def user_row(report: UserReport, now: datetime) -> UserRow:
    u = report.user
    folders = (folder_row("contacts", report.contacts, report.contacts_skipped, u.sync_contacts, now),
               folder_row("calendar", report.calendar, report.calendar_skipped, u.sync_calendar, now))
    enabled = [f for f in folders if f.status != "off"]
    status = min((f.status for f in folders), key=STATUS_ORDER.__getitem__)
    if report.problems and STATUS_ORDER[status] > STATUS_ORDER["conflict"]:
        status = "conflict"
    lags = [f.lag for f in enabled if f.lag is not None]
    lag = max(lags) if lags and len(lags) == len(enabled) else None
    return UserRow(u.extension, u.name, u.mailbox.lower(), u.room, "conflict" if report.problems else "ok",
                   tuple(report.problems), folders, status, lag)


def _lag_key(row: UserRow) -> tuple[int, float]:
    """Bigger is worse: never synced (an enabled folder) above any lag, all folders off below every lag."""
    if row.lag is not None:
        return (1, row.lag.total_seconds())
    return (0, 0.0) if row.status == "off" else (2, 0.0)


def understood(query: Mapping[str, str]) -> dict[str, str]:
    """The filter (q, status) and sort (sort, order) a query asks for; unknown values fall back to the
    defaults (sorted by extension, all statuses)."""
    text = query.get("q", "").strip().lower()[:100]
    status = query.get("status", "")
    status = status if status in STATUSES else ""
    sort = query.get("sort", "extension")
    sort = sort if sort in SORTS else "extension"
    default_order = "desc" if sort == "lag" else "asc"
    order = query.get("order", default_order)
    order = order if order in ("asc", "desc") else default_order
    return {"q": text, "status": status, "sort": sort, "order": order}


def select_rows(rows: Sequence[UserRow], query: Mapping[str, str]) -> tuple[list[UserRow], dict[str, str]]:
    """Filter (q: text in extension, name or mailbox; status) and sort (sort, order) as the query asks;
    returns the rows and the choices as understood, for the form and the column links."""
    choices = understood(query)
    text, status, sort, order = choices["q"], choices["status"], choices["sort"], choices["order"]
    chosen = [r for r in rows if (not text or text in f"{r.extension} {r.name} {r.mailbox}".lower())
              and (not status or r.status == status)]
    keys = {
        "extension": lambda r: (len(r.extension), r.extension),
        "name": lambda r: (r.name.lower(), r.extension),
        "status": lambda r: (-STATUS_ORDER[r.status], r.extension),  # worst = biggest, like lag
        "lag": lambda r: (_lag_key(r), r.extension),
    }
    chosen.sort(key=keys[sort], reverse=order == "desc")
    return chosen, choices


def short_duration(lag: timedelta | None) -> str:
    if lag is None:
        return "–"
    seconds = int(lag.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def page_of(rows: Sequence[UserRow], query: Mapping[str, str]) -> tuple[list[UserRow], int, int]:
    """The rows of `?page=N` (1-based, clamped), the page and the number of pages."""
    pages = max(1, -(-len(rows) // PER_PAGE))
    raw = query.get("page", "1")
    page = min(max(int(raw), 1), pages) if raw.isdigit() and len(raw) < 6 else 1
    return list(rows[(page - 1) * PER_PAGE:page * PER_PAGE]), page, pages


@dataclass
class ReportCache:
    """The last user reports read and their rows, while nothing they show has changed.

    Reading them is the expensive part of these pages with a thousand users (every folder state, skip and
    directory entry, then a row each); admins paging and sorting ask for the same data again and again.
    A changed config or a changed folder state or skipped item (their count and newest instant) reads
    them again before the page is shown; after CACHE_SECONDS without such a change they are read again in
    the background while the pages show the last reading. One reading at a time: requests that need it
    wait for the same one. Each filter and sort asked for is kept too (SELECTIONS of them); only the rows
    a page shows are made again from their reports with the request's `now`, so the lag they show is
    exact (a lag sort is the same at any `now`)."""

    config: Config | None = None  # the (frozen) config they were read for
    signature: tuple[object, ...] = ()
    read_at: datetime | None = None
    reports: dict[str, UserReport] = field(default_factory=dict)  # by extension
    rows: list[UserRow] = field(default_factory=list)  # as of read_at, in config order
    selections: dict[tuple[str, ...], tuple[list[UserRow], dict[str, str]]] = field(default_factory=dict)
    reading: asyncio.Task[None] | None = None

    def select(self, query: Mapping[str, str]) -> tuple[list[UserRow], dict[str, str]]:
        """`select_rows` over the cached rows, remembered per understood choice."""
        choices = understood(query)
        key = tuple(choices.values())
        if key not in self.selections:
            if len(self.selections) >= SELECTIONS:
                self.selections.clear()
            self.selections[key] = select_rows(self.rows, choices)
        return self.selections[key]

    def current(self, shown: Sequence[UserRow], now: datetime) -> list[UserRow]:
        """The shown rows made again at `now`."""
        return [user_row(self.reports[r.extension], now) for r in shown]

    async def read(self, ctx: WebContext, config: Config, signature: tuple[object, ...], now: datetime) -> None:
        reports = await user_reports(ctx.store, config, now, counts=False)
        rows = []
        for start in range(0, len(reports), ROWS_PER_TURN):
            await asyncio.sleep(0)  # a thousand rows in turns: other requests are served in between
            rows += [user_row(r, now) for r in reports[start:start + ROWS_PER_TURN]]
        self.reports, self.rows = {r.user.extension: r for r in reports}, rows
        self.selections.clear()
        self.config, self.signature, self.read_at = config, signature, now

    def start_reading(self, ctx: WebContext, config: Config, signature: tuple[object, ...],
                      now: datetime) -> asyncio.Task[None]:
        if self.reading is None or self.reading.done():
            self.reading = asyncio.create_task(self.read(ctx, config, signature, now), name="pbxsync-web-users")
            self.reading.add_done_callback(_log_failure)
        return self.reading


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:  # a page waiting for it shows the error too
        log.error("reading the users' sync state failed: %s", task.exception())


CACHES: weakref.WeakKeyDictionary[Store, ReportCache] = weakref.WeakKeyDictionary()  # one per open store
# What the pages show changes the signature; the timed renewal only catches what it cannot see (an address
# resolved anew with the same count). Reading a thousand users holds the event loop ~25 ms: not every 5 s.
CACHE_SECONDS = 60.0
SELECTIONS = 64
ROWS_PER_TURN = 200
_SIGNATURE = ("SELECT (SELECT count(*) || ' ' || coalesce(max(last_attempt), '') FROM folder_sync), "
              "(SELECT count(*) || ' ' || coalesce(max(seen_at), '') FROM skipped_items), "
              "(SELECT count(*) FROM address_cache)")


async def cached_reports(ctx: WebContext, now: datetime) -> ReportCache:
    async with ctx.store.conn.execute(_SIGNATURE) as cur:
        signature = tuple(await cur.fetchone() or ())
    cache = CACHES.setdefault(ctx.store, ReportCache())
    config = ctx.config
    while cache.config is not config or cache.signature != signature:
        # What a page shows has changed: wait for a reading that has it (a running one may be older).
        await asyncio.shield(cache.start_reading(ctx, config, signature, now))
    fresh = cache.read_at is not None and timedelta(0) <= now - cache.read_at <= timedelta(seconds=CACHE_SECONDS)
    if not fresh:
        cache.start_reading(ctx, config, signature, now)  # in the background; this page shows the last one
    return cache


async def read_ahead(ctx: WebContext) -> None:
    """The first reading before the portal serves (when it has admins), so the first admins to open these
    pages, and everyone queued behind them, do not wait for it. A failure is only logged: the pages try again."""
    if not ctx.config.web.admins:
        return
    try:
        await cached_reports(ctx, ctx.clock.now())
    except (PbxsyncError, sqlite3.Error) as exc:
        log.warning("reading the users' sync state ahead failed: %s", exc)


async def users_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    now = web_context(request).clock.now()
    cache = await cached_reports(web_context(request), now)
    rows, chosen = cache.select(request.query)
    shown, page, pages = page_of(rows, request.query)
    return render(request, "admin_users.html", title="Users", admin_nav=ADMIN_NAV, rows=cache.current(shown, now),
                  matching=len(rows), page=page, pages=pages, chosen=chosen, statuses=STATUSES, duration=short_duration,
                  total=len(web_context(request).config.users))


async def lag_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    now = web_context(request).clock.now()
    cache = await cached_reports(web_context(request), now)
    rows, _ = cache.select({"sort": "lag", "order": "desc"})
    never = [r for r in rows if r.lag is None and r.status != "off"]
    never_count, never = len(never), cache.current(never[:PER_PAGE], now)
    lagging = [r for r in rows if r.lag is not None]
    lagging_count, lagging = len(lagging), cache.current(lagging[:max(PER_PAGE, CHART_ROWS)], now)
    # Minutes, the unit an admin thinks in for a sync that runs every few minutes; the worst few only:
    # a thousand bars say less than the table.
    chart = horizontal_bars([(f"{r.extension} {r.name}"[:28], r.lag.total_seconds() / 60, short_duration(r.lag))
                             for r in lagging[:CHART_ROWS] if r.lag is not None], LAG_COLOUR, unit=" min")
    return render(request, "admin_lag.html", title="Sync lag", admin_nav=ADMIN_NAV, rows=lagging[:PER_PAGE],
                  lagging=lagging_count, never=never, never_count=never_count, chart=chart,
                  chart_rows=min(len(lagging), CHART_ROWS), duration=short_duration)


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/users", users_page), web.get("/admin/lag", lag_page)]
