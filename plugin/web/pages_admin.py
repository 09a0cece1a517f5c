"""The admin pages, for extensions in `[web] admins` only: Users, Sync lag, Health, Bookings (with their
audit trail), AUTOCALL outcomes, Configuration. One entry in the main navigation ("Admin"); the pages
share a sub-navigation (templates/admin_base.html) and the guard below.

Each page lives in its own module (plugin/web/admin_<page>.py) with a `routes()`; this one collects them.
A signed-in non-admin who opens one gets 403 and leaves a log line with their extension and the path:
someone trying admin URLs is worth an administrator's glance.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import cast

from aiohttp import web

from pbxsync.plugin.web.auth import WebUser, current_user, require_admin
from pbxsync.plugin.web.render import NavLink

log = logging.getLogger("pbxsync.web")

ADMIN_MODULES = ("admin_users", "admin_health", "admin_bookings", "admin_outcomes", "admin_config")
NAV = (NavLink("Admin", "/admin/users", admin_only=True),)
# The admin pages' own navigation: (title, path), in the order the sub-navigation shows them.
ADMIN_NAV = (("Users", "/admin/users"), ("Sync lag", "/admin/lag"), ("Health", "/admin/health"),
             ("Bookings", "/admin/bookings"), ("AUTOCALL outcomes", "/admin/outcomes"),
             ("Configuration", "/admin/config"))


def admin_only(request: web.Request) -> WebUser:
    """`require_admin`, plus a log line when a signed-in user who is no admin is refused."""
    try:
        return require_admin(request)
    except web.HTTPForbidden:
        user = current_user(request)
        log.warning("web: extension %s refused an admin page: %s %s", user.extension if user else "?",
                    request.method, request.path[:200])
        raise


def routes() -> list[web.RouteDef]:
    found: list[web.RouteDef] = [web.get("/admin", admin_home)]
    for name in ADMIN_MODULES:
        module = importlib.import_module(f"pbxsync.plugin.web.{name}")
        found += cast(Callable[[], list[web.RouteDef]], module.routes)()
    return found


async def admin_home(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    raise web.HTTPSeeOther("/admin/users")
