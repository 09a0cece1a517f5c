"""Signing in and out.

One answer for every failed sign-in ("extension or password is wrong"), whether the extension exists or
not, and an unknown extension costs the same Argon2 verification as a wrong password: the page tells
nobody which extensions have accounts. Failures are throttled per extension and per client address
(plugin.web.signin_guard).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from aiohttp import web

from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.accounts import MAX_PASSWORD
from pbxsync.plugin.web.auth import PRE_SESSION_KEY, SESSION_KEY, current_user
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.render import render
from pbxsync.plugin.web.security import client_address, is_https
from pbxsync.plugin.web.sessions import COOKIE, PRE_COOKIE, encode_cookie
from pbxsync.sync.config import DIALABLE

log = logging.getLogger("pbxsync.web")

HOME = "/my/sync"


def routes() -> list[web.RouteDef]:
    return [web.get("/", home), web.get("/signin", signin_page), web.post("/signin", signin),
            web.post("/signout", signout)]


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME if current_user(request) is not None else "/signin")


def safe_next(target: str) -> str:
    """Where to go after signing in: only a path on this site (never //host or a scheme)."""
    # Browsers drop tabs and newlines inside URLs ("/\t/evil.example" is "//evil.example"): no whitespace or
    # control characters at all, and no backslash (read as "/" by browsers).
    plain = all(c.isprintable() and not c.isspace() and c != "\\" for c in target)
    if plain and target.startswith("/") and not target.startswith("//") and len(target) < 500:
        return target
    return HOME


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:
    """Every portal cookie: HttpOnly, SameSite=Strict, Secure over HTTPS, for the whole site."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Strict", secure=is_https(request),
                        path="/")


def with_pre_session(request: web.Request) -> None:
    """Before rendering a form for signed-out visitors: a pre-session id its CSRF token is bound to."""
    if not request.cookies.get(PRE_COOKIE):
        request[PRE_SESSION_KEY] = secrets.token_urlsafe(24)


def keep_pre_session(request: web.Request, response: web.StreamResponse) -> None:
    if PRE_SESSION_KEY in request:
        set_cookie(request, response, PRE_COOKIE, request[PRE_SESSION_KEY])


async def signin_page(request: web.Request, *, error: str = "", extension: str = "",
                      status: int = 200) -> web.StreamResponse:
    if current_user(request) is not None and request.method == "GET":
        raise web.HTTPSeeOther(safe_next(request.query.get("next", HOME)))
    with_pre_session(request)
    response = render(request, "signin.html", title="Sign in", error=error, extension=extension,
                      next=safe_next(request.query.get("next", HOME)), status=status)
    keep_pre_session(request, response)
    return response


async def signin(request: web.Request) -> web.StreamResponse:
    ctx = web_context(request)
    form = await request.post()
    extension = str(form.get("extension", "")).strip()[:64]
    password = str(form.get("password", ""))
    source = client_address(request)
    now = ctx.clock.now().timestamp()
    known = ctx.config.user_by_extension(extension) is not None
    if not ctx.signin_guard.admit(source, extension, now):
        ctx.signin_guard.log_failure(source, extension, now, known=known)
        return await signin_page(request, error="Too many attempts. Wait a minute, then try again.",
                                 extension=extension, status=429)
    well_formed = DIALABLE.fullmatch(extension) is not None and len(password) <= MAX_PASSWORD
    # Always one Argon2 verification (against a dummy hash for an unknown extension): timing tells nothing.
    ok = await accounts.check_password(ctx.store, extension if well_formed else "", password[:MAX_PASSWORD])
    ok = ok and well_formed and known
    ctx.signin_guard.record(source, extension, ok, now, known=known)
    if not ok:
        return await signin_page(request, error="The extension or the password is wrong.", extension=extension,
                                 status=401)
    log.info("web sign-in: extension %s from %s", extension, source)
    response = web.HTTPSeeOther(safe_next(str(form.get("next", HOME))))
    await signed_in(request, response, extension)
    raise response


async def signed_in(request: web.Request, response: web.StreamResponse, extension: str) -> None:
    """Open a session for `extension` and give `response` its cookie."""
    ctx = web_context(request)
    previous = request.get(SESSION_KEY)
    if previous is not None:  # signing in as somebody else in this browser ends the session it had
        await accounts.close_session(ctx.store, previous)
    lifetime = timedelta(minutes=ctx.config.web.session_minutes)
    session_id, expires = await accounts.open_session(ctx.store, extension, ctx.clock.now(), lifetime)
    set_cookie(request, response, COOKIE, encode_cookie(ctx.secret_key, session_id, extension, expires),
               max_age=int(lifetime.total_seconds()))
    response.del_cookie(PRE_COOKIE, path="/")


async def signout(request: web.Request) -> web.StreamResponse:
    ctx = web_context(request)
    session_id = request.get(SESSION_KEY)
    if session_id is not None:
        await accounts.close_session(ctx.store, session_id)
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(COOKIE, path="/")
    raise response
