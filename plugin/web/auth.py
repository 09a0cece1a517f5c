"""Who is signed in: the session middleware, and the guards every page calls first.

`require_user(request)` returns the signed-in `WebUser` or sends the browser to the sign-in page;
`require_admin` also needs the extension in `[web] admins`; `require_self_or_admin(request, ext)` guards
pages about one user (their own, or any for an admin). A session belongs to an extension that is still a
user in the config: removing a user from [[users]] signs them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.context import WebContext, web_context
from pbxsync.plugin.web.sessions import COOKIE, PRE_COOKIE, csrf_token, decode_cookie


@dataclass(frozen=True)
class WebUser:
    extension: str
    name: str
    is_admin: bool
    session_id: str

    def csrf(self, key: bytes) -> str:
        return csrf_token(key, self.session_id)


USER_KEY: web.RequestKey[WebUser] = web.RequestKey("pbxsync_web_user", WebUser)
SESSION_KEY: web.RequestKey[str] = web.RequestKey("pbxsync_session_id", str)
PRE_SESSION_KEY: web.RequestKey[str] = web.RequestKey("pbxsync_pre_session", str)  # set with the form


def user_for(ctx: WebContext, extension: str, session_id: str) -> WebUser | None:
    user = ctx.config.user_by_extension(extension)
    if user is None:
        return None
    return WebUser(extension, user.name or extension, extension in ctx.config.web.admins, session_id)


@web.middleware
async def load_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = web_context(request)
    now = ctx.clock.now()
    cookie = decode_cookie(ctx.secret_key, request.cookies.get(COOKIE, ""), now)
    if cookie is not None and await accounts.session_alive(ctx.store, cookie.session_id, cookie.extension, now):
        user = user_for(ctx, cookie.extension, cookie.session_id)
        if user is not None:
            request[USER_KEY] = user
            request[SESSION_KEY] = cookie.session_id
    return await handler(request)


def current_user(request: web.Request) -> WebUser | None:
    return request.get(USER_KEY)


def require_user(request: web.Request) -> WebUser:
    user = current_user(request)
    if user is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='/')}")
        raise web.HTTPUnauthorized(text="Sign in first.\n")
    return user


def require_admin(request: web.Request) -> WebUser:
    user = require_user(request)
    if not user.is_admin:
        raise web.HTTPForbidden(text="This page is for administrators.\n")
    return user


def require_self_or_admin(request: web.Request, extension: str) -> WebUser:
    """For pages about the user `extension`: only that user, or an admin, may open them."""
    user = require_user(request)
    if user.extension != extension and not user.is_admin:
        raise web.HTTPForbidden(text="This page belongs to another user.\n")
    return user


def form_token(request: web.Request) -> str:
    """The CSRF token the page's forms carry: the session's, or before sign-in the pre-session cookie's."""
    ctx = web_context(request)
    user = current_user(request)
    if user is not None:
        return user.csrf(ctx.secret_key)
    return csrf_token(ctx.secret_key, request.get(PRE_SESSION_KEY) or request.cookies.get(PRE_COOKIE, ""))
