"""Admin: *Users* (match status, last sync per folder, errors in words, sync lag) and *Sync lag*.

The data is `pbxsync users`' own (plugin.users_report); this module only turns it into rows and sorts
and filters them by query parameters (`?q=…&status=error&sort=lag&order=desc`), so the table works
without JavaScript and a sorted view can be bookmarked. Sync lag = now − last success of a folder; a
user's lag is their worst enabled folder's; a folder never synced has no lag and sorts as the worst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from pbxsync.plugin.users_report import users_report
from pbxsync.plugin.web.chart import horizontal_bars
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.pages_admin import ADMIN_NAV, admin_only
from pbxsync.plugin.web.render import render
from pbxsync.sync.model import parse_utc

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


def folder_row(folder: str, doc: Mapping[str, Any] | None, enabled: bool, now: datetime) -> FolderRow:
    if not enabled:
        return FolderRow(folder, "off", None, None, "", 0)
    if doc is None or not doc.get("last_attempt"):
        return FolderRow(folder, "never", None, None, "", 0)
    success = parse_utc(doc["last_success"]) if doc.get("last_success") else None
    lag = max(now - success, timedelta(0)) if success else None
    if doc.get("last_error"):
        return FolderRow(folder, "error", success, lag, error_in_words(doc.get("error_kind"), doc["last_error"]),
                         int(doc.get("skipped") or 0))
    return FolderRow(folder, "ok", success, lag, "", int(doc.get("skipped") or 0))


def user_row(report: Mapping[str, Any], now: datetime) -> UserRow:
    folders = (folder_row("contacts", report.get("contacts"), bool(report["sync_contacts"]), now),
               folder_row("calendar", report.get("calendar"), bool(report["sync_calendar"]), now))
    enabled = [f for f in folders if f.status != "off"]
    status = min((f.status for f in folders), key=STATUS_ORDER.__getitem__)
    if report["match"]["status"] != "ok" and STATUS_ORDER[status] > STATUS_ORDER["conflict"]:
        status = "conflict"
    lags = [f.lag for f in enabled]
    lag = max(lags) if lags and all(x is not None for x in lags) else None  # type: ignore[type-var]
    return UserRow(report["extension"], report["name"] or "", (report["emails"] or [""])[0], report["room"] or "",
                   report["match"]["status"], tuple(report["match"]["problems"]), folders, status, lag)


def _lag_key(row: UserRow) -> tuple[int, float]:
    """Bigger is worse: never synced (an enabled folder) above any lag, all folders off below every lag."""
    if row.lag is not None:
        return (1, row.lag.total_seconds())
    return (0, 0.0) if row.status == "off" else (2, 0.0)


def select_rows(rows: Sequence[UserRow], query: Mapping[str, str]) -> tuple[list[UserRow], dict[str, str]]:
    """Filter (q: text in extension, name or mailbox; status) and sort (sort, order) as the query asks.

    Unknown values fall back to the defaults (sorted by extension, all statuses); returns the rows and
    the choices as understood, for the form and the column links."""
    text = query.get("q", "").strip().lower()[:100]
    status = query.get("status", "")
    status = status if status in STATUSES else ""
    sort = query.get("sort", "extension")
    sort = sort if sort in SORTS else "extension"
    default_order = "desc" if sort == "lag" else "asc"
    order = query.get("order", default_order)
    order = order if order in ("asc", "desc") else default_order
    chosen = [r for r in rows if (not text or text in f"{r.extension} {r.name} {r.mailbox}".lower())
              and (not status or r.status == status)]
    keys = {
        "extension": lambda r: (len(r.extension), r.extension),
        "name": lambda r: (r.name.lower(), r.extension),
        "status": lambda r: (-STATUS_ORDER[r.status], r.extension),  # worst = biggest, like lag
        "lag": lambda r: (_lag_key(r), r.extension),
    }
    chosen.sort(key=keys[sort], reverse=order == "desc")
    return chosen, {"q": text, "status": status, "sort": sort, "order": order}


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


async def _rows(request: web.Request) -> list[UserRow]:
    ctx = web_context(request)
    now = ctx.clock.now()
    return [user_row(r, now) for r in await users_report(ctx.store, ctx.config, now)]


async def users_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    rows, chosen = select_rows(await _rows(request), request.query)
    return render(request, "admin_users.html", title="Users", admin_nav=ADMIN_NAV, rows=rows, chosen=chosen,
                  statuses=STATUSES, sorts=SORTS, duration=short_duration, total=len(web_context(request).config.users))


async def lag_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    rows, _ = select_rows(await _rows(request), {"sort": "lag", "order": "desc"})
    lagging = [r for r in rows if r.lag is not None]
    never = [r for r in rows if r.lag is None and r.status != "off"]
    # Minutes, the unit an admin thinks in for a sync that runs every few minutes.
    chart = horizontal_bars([(f"{r.extension} {r.name}"[:28], r.lag.total_seconds() / 60, short_duration(r.lag))
                             for r in lagging if r.lag is not None], LAG_COLOUR, unit=" min")
    return render(request, "admin_lag.html", title="Sync lag", admin_nav=ADMIN_NAV, rows=lagging, never=never,
                  chart=chart, duration=short_duration)


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/users", users_page), web.get("/admin/lag", lag_page)]
