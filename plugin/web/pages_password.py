"""Setting a password: from a one-time sign-in link (`pbxsync passwd EXT --link`), or signed in with the
current one. Either way every other session of the user ends (plugin.web.accounts.set_password) and this
browser gets a fresh one.

A link is only looked at by GET (a mail scanner that fetches it spends nothing); it is spent by the POST
that sets the password, once. A wrong current password counts as a failed sign-in (plugin.web.signin_guard).
"""

from __future__ import annotations

import logging

from aiohttp import web

from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.auth import require_user
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.pages_signin import HOME, keep_pre_session, signed_in, with_pre_session
from pbxsync.plugin.web.render import NavLink, render
from pbxsync.plugin.web.security import client_address

log = logging.getLogger("pbxsync.web")

NAV = (NavLink("Password", "/my/password"),)
GONE = "This sign-in link has been used or has expired. Ask your administrator for a new one."


def routes() -> list[web.RouteDef]:
    return [web.get("/link/{token}", link_page), web.post("/link/{token}", link_set),
            web.get("/my/password", password_page), web.post("/my/password", password_set)]


async def link_page(request: web.Request, *, error: str = "", status: int = 200) -> web.StreamResponse:
    ctx = web_context(request)
    extension = await accounts.link_extension(ctx.store, request.match_info["token"], ctx.clock.now())
    if extension is None:
        return render(request, "message.html", title="Link not valid", message=GONE, status=410)
    with_pre_session(request)
    response = render(request, "password.html", title="Set your password", extension=extension, error=error,
                      action=request.path, current=False, status=status)
    keep_pre_session(request, response)
    return response


async def link_set(request: web.Request) -> web.StreamResponse:
    ctx = web_context(request)
    form = await request.post()
    problem = accounts.password_problem(str(form.get("password", "")), str(form.get("again", "")))
    if problem:
        return await link_page(request, error=problem, status=400)
    extension = await accounts.spend_link(ctx.store, request.match_info["token"], ctx.clock.now())
    if extension is None or ctx.config.user_by_extension(extension) is None:
        return render(request, "message.html", title="Link not valid", message=GONE, status=410)
    await accounts.set_password(ctx.store, extension, str(form["password"]), ctx.clock.now())
    log.info("web password set from a sign-in link: extension %s", extension)
    response = web.HTTPSeeOther(HOME)
    await signed_in(request, response, extension)
    raise response


async def password_page(request: web.Request, *, error: str = "", status: int = 200) -> web.StreamResponse:
    user = require_user(request)
    return render(request, "password.html", title="Change your password", extension=user.extension, error=error,
                  action="/my/password", current=True, status=status)


async def password_set(request: web.Request) -> web.StreamResponse:
    ctx = web_context(request)
    user = require_user(request)
    form = await request.post()
    # Throttled like sign-in: a borrowed or stolen session must not be a way to guess the password.
    source, now = client_address(request), ctx.clock.now().timestamp()
    if not ctx.signin_guard.admit(source, user.extension, now):
        ctx.signin_guard.log_failure(source, user.extension, now)
        return await password_page(request, error="Too many attempts. Wait a minute, then try again.", status=429)
    right = await accounts.check_password(ctx.store, user.extension, str(form.get("current", "")))
    ctx.signin_guard.record(source, user.extension, right, now)
    if not right:
        return await password_page(request, error="The current password is wrong.", status=400)
    problem = accounts.password_problem(str(form.get("password", "")), str(form.get("again", "")))
    if problem:
        return await password_page(request, error=problem, status=400)
    await accounts.set_password(ctx.store, user.extension, str(form["password"]), ctx.clock.now())
    log.info("web password changed: extension %s", user.extension)
    response = web.HTTPSeeOther(HOME)
    await signed_in(request, response, user.extension)
    raise response
