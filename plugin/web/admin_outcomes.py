"""Admin: *AUTOCALL outcomes over time*: answered / busy / no answer / failed per day, as a stacked bar
chart drawn on the server (plugin.web.chart) with the same numbers in a table beside it.

Days are UTC days of the attempt's start. "failed" counts every call that was placed and did not
reach the phone for a reason of the PBX's (failed, congestion, outcome unknown, not sent). Calls still
ringing and calls pbxsync hung up itself because the meeting was cancelled are not outcomes and not
counted. `?days=N` (1-90, default 14) chooses the span, ending today.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from aiohttp import web

from pbxsync.plugin.web.chart import Series, stacked_columns
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.pages_admin import ADMIN_NAV, admin_only
from pbxsync.plugin.web.render import render
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store

# Colours at least 3:1 against the white page (tests/unit/test_web_admin_chart.py checks), told apart by
# more than hue too: each bar has its own <title>, and the table names every number.
SERIES = (Series("answered", "answered", "#0b5cad"), Series("busy", "busy", "#9a6700"),
          Series("no_answer", "no answer", "#6639ba"), Series("failed", "failed", "#b3261e"))
GROUP = {"answered": "answered", "busy": "busy", "no_answer": "no_answer", "failed": "failed",
         "congestion": "failed", "unknown": "failed", "not_sent": "failed"}
DEFAULT_DAYS, MAX_DAYS = 14, 90


def day_span(today: datetime, days: int) -> list[str]:
    """The `days` UTC dates ending with today's, oldest first, as YYYY-MM-DD."""
    first = today.date() - timedelta(days=days - 1)
    return [(first + timedelta(days=i)).isoformat() for i in range(days)]


def outcome_counts(rows: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """(day, stored outcome, n) rows -> {(day, series key): n}; outcomes that are not results are dropped."""
    counts: dict[tuple[str, str], int] = {}
    for day, outcome, n in rows:
        key = GROUP.get(outcome)
        if key is not None:
            counts[(day, key)] = counts.get((day, key), 0) + n
    return counts


async def outcome_rows(store: Store, since: datetime) -> list[tuple[str, str, int]]:
    async with store.conn.execute(
        "SELECT substr(created_at, 1, 10) AS day, outcome, count(*) FROM autocall_attempts "
        "WHERE created_at >= ? GROUP BY day, outcome", (utc_text(since),)
    ) as cur:
        return [(str(day), str(outcome), int(n)) async for day, outcome, n in cur]


def parse_days(query: Mapping[str, str]) -> int:
    raw = query.get("days", "")
    return min(max(int(raw), 1), MAX_DAYS) if raw.isdigit() and len(raw) <= 3 else DEFAULT_DAYS


async def outcomes_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    ctx = web_context(request)
    days = parse_days(request.query)
    categories = day_span(ctx.clock.now(), days)
    since = datetime.fromisoformat(categories[0] + "T00:00:00+00:00")
    counts = outcome_counts(await outcome_rows(ctx.store, since))
    chart = stacked_columns(categories, SERIES, counts, category_label="Day (UTC)")
    table = [(day, [counts.get((day, s.key), 0) for s in SERIES]) for day in categories]
    totals = [sum(counts.get((day, s.key), 0) for day in categories) for s in SERIES]
    return render(request, "admin_outcomes.html", title="AUTOCALL outcomes", admin_nav=ADMIN_NAV, chart=chart,
                  series=SERIES, table=table, totals=totals, days=days, choices=(7, 14, 30, 90))


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/outcomes", outcomes_page)]
