"""*My sync*: the signed-in employee's own folders, skipped items, "Sync now" and their settings."""

from __future__ import annotations

from aiohttp import web

from pbxsync.plugin.web.auth import require_self_or_admin, require_user
from pbxsync.plugin.web.render import NavLink, render

NAV = (NavLink("My sync", "/my/sync"),)


def routes() -> list[web.RouteDef]:
    return [web.get("/my/sync", my_sync), web.get("/users/{extension}/sync", user_sync)]


async def my_sync(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    raise web.HTTPSeeOther(f"/users/{user.extension}/sync")


async def user_sync(request: web.Request) -> web.StreamResponse:
    extension = request.match_info["extension"]
    require_self_or_admin(request, extension)
    return render(request, "mysync.html", title="My sync", extension=extension)
