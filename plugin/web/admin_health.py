"""Admin: *System health*, the same parts as `pbxsync status`, from the same document (the daemon's
/status) read by the same functions (plugin.commands.status), so the page and the CLI never disagree."""

from __future__ import annotations

from aiohttp import web

from pbxsync.plugin.commands.status import notification_lines, service_rows, store_problem
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.pages_admin import ADMIN_NAV, admin_only
from pbxsync.plugin.web.render import render


async def health_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    status = web_context(request).daemon_status
    doc = status() if status is not None else None
    if doc is None:
        return render(request, "admin_health.html", title="Health", admin_nav=ADMIN_NAV, doc=None, rows=[],
                      problem=None, notifications=[])
    return render(request, "admin_health.html", title="Health", admin_nav=ADMIN_NAV, doc=doc,
                  rows=service_rows(doc), problem=store_problem(doc), notifications=notification_lines(doc))


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/health", health_page)]
