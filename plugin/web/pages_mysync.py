"""*My sync*: a user's folders (last success, last error in words, skipped items), "Sync now" with live
progress, and the settings `[web] user_settings` lets them change (precedence: plugin.user_settings).

"Sync now" is a POST. With JavaScript (static/mysync.js) it is sent by fetch and the page polls
`/users/EXT/sync/progress` (JSON) once a second, updating a progress bar, then reloads itself. Without
JavaScript the POST redirects back to the page, which says a sync is running and offers a refresh link
(no meta refresh: a page that reloads itself under a screen reader's cursor is worse than a link).
A user's pages are theirs: another user gets 403; admins may open anyone's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbxsync.plugin.user_settings import effective_user, load_choices, save_choices, valid_choice
from pbxsync.plugin.web.auth import require_self_or_admin, require_user
from pbxsync.plugin.web.context import WebContext, web_context
from pbxsync.plugin.web.render import NavLink, render
from pbxsync.plugin.web.sync_jobs import SyncJob
from pbxsync.plugin.web.sync_status import FolderView, folder_views
from pbxsync.sync.config import UserConfig
from pbxsync.sync.model import utc_text

NAV = (NavLink("My sync", "/my/sync"),)


def routes() -> list[web.RouteDef]:
    return [web.get("/my/sync", my_sync), web.get("/users/{extension}/sync", sync_page),
            web.post("/users/{extension}/sync", sync_now), web.get("/users/{extension}/sync/progress", progress),
            web.post("/users/{extension}/settings", save_settings)]


async def my_sync(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    raise web.HTTPSeeOther(f"/users/{user.extension}/sync")


async def page_user(request: web.Request) -> tuple[WebContext, UserConfig]:
    """The user the page is about, effective settings applied; 403 for another user, 404 for nobody."""
    extension = request.match_info["extension"]
    require_self_or_admin(request, extension)
    ctx = web_context(request)
    user = ctx.config.user_by_extension(extension)
    if user is None:
        raise web.HTTPNotFound(text="No such user.\n")
    choices = (await load_choices(ctx.store, extension)).get(extension, {})
    return ctx, effective_user(ctx.config, user, choices)


def folder_progress(view: FolderView, job: SyncJob | None) -> str:
    if not view.enabled:
        return "off"
    if job is None or not view.done_since(job.started):
        return "waiting" if job is not None and job.running else "idle"
    return "failed" if view.state.last_error else "done"


async def sync_page(request: web.Request) -> web.StreamResponse:
    ctx, user = await page_user(request)
    views = await folder_views(ctx.store, user)
    job = ctx.sync_jobs.latest(user.extension)
    allowed = list(ctx.config.web.user_settings)
    return render(request, "mysync.html", title="My sync", subject=user, folders=views, job=job,
                  progress={v.folder.value: folder_progress(v, job) for v in views}, allowed=allowed,
                  rooms=ctx.config.pbx.rooms, saved=request.query.get("saved") == "1")


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


async def sync_now(request: web.Request) -> web.StreamResponse:
    ctx, user = await page_user(request)
    if not (user.sync_contacts or user.sync_calendar):
        raise web.HTTPConflict(text="Both folders are switched off: there is nothing to sync.\n")
    ctx.sync_jobs.start(user.extension, ctx.clock.now(), ctx.sync_now, ctx.clock.now)
    if wants_json(request):
        return web.json_response(await progress_doc(ctx, user), status=202)
    raise web.HTTPSeeOther(f"/users/{user.extension}/sync#progress")


async def progress_doc(ctx: WebContext, user: UserConfig) -> dict[str, Any]:
    job = ctx.sync_jobs.latest(user.extension)
    views = await folder_views(ctx.store, user)
    states = {v.folder.value: folder_progress(v, job) for v in views}
    counted = [s for s in states.values() if s != "off"]
    return {
        "running": job is not None and job.running,
        "started": utc_text(job.started) if job else None,
        "finished": utc_text(job.finished) if job and job.finished else None,
        "failed": job.failed if job else None,
        "done": sum(1 for s in counted if s in ("done", "failed")),
        "total": len(counted),
        "folders": [{"folder": v.folder.value, "title": v.title, "state": states[v.folder.value]} for v in views],
    }


async def progress(request: web.Request) -> web.StreamResponse:
    ctx, user = await page_user(request)
    return web.json_response(await progress_doc(ctx, user))


async def save_settings(request: web.Request) -> web.StreamResponse:
    ctx, user = await page_user(request)
    form = await request.post()
    chosen: dict[str, object] = {}
    for name in ctx.config.web.user_settings:
        if name in ("sync_contacts", "sync_calendar"):
            chosen[name] = form.get(name) == "on"  # an unticked checkbox is not sent at all
        elif name == "room":
            chosen[name] = str(form.get("room", ""))
    refused = [name for name, value in chosen.items() if not valid_choice(ctx.config, name, value)]
    if refused:
        raise web.HTTPBadRequest(text=f"Not a choice you can make: {', '.join(refused)}.\n")
    if chosen:
        await save_choices(ctx.store, user.extension, chosen, ctx.clock.now())
        await ctx.settings_changed()
    raise web.HTTPSeeOther(f"/users/{user.extension}/sync?saved=1#settings")
