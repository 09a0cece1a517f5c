"""The portal's aiohttp Application, built from a `WebContext`.

Middlewares, outermost first: the Host check (nothing runs for a foreign Host), the session (who is
signed in), refusals rendered as pages, the POST check (Origin and CSRF token). Security headers go on
every response through on_response_prepare, so error pages and static files carry them too. Pages come
from the modules listed in plugin.web.pages; the stylesheet and scripts are package data under /static/
(no CDN).
"""

from __future__ import annotations

from aiohttp import web

from pbxsync.plugin.web.admin_users import read_ahead
from pbxsync.plugin.web.auth import load_session
from pbxsync.plugin.web.context import CONTEXT, WebContext
from pbxsync.plugin.web.pages import page_routes
from pbxsync.plugin.web.render import ENV, NAV_KEY
from pbxsync.plugin.web.security import error_pages, host_check, post_check, security_headers
from pbxsync.plugin.web.static_files import static_routes

MAX_BODY = 64 * 1024  # forms are small; a larger body is refused before it is read


def create_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[host_check, load_session, error_pages, post_check], client_max_size=MAX_BODY)
    app[CONTEXT] = ctx
    routes, nav = page_routes()
    app[NAV_KEY] = nav
    app.add_routes(routes)
    app.add_routes(static_routes())
    app.on_response_prepare.append(security_headers)
    app.on_startup.append(compile_templates)
    app.on_startup.append(read_admin_pages_ahead)
    return app


async def read_admin_pages_ahead(app: web.Application) -> None:
    await read_ahead(app[CONTEXT])


async def compile_templates(app: web.Application) -> None:
    """Every template compiled before the first request: Jinja2 compiles one on first use (5-30 ms each),
    which the first visitors of each page, and everyone queued behind them, would wait for."""
    for name in ENV.list_templates(extensions=["html"]):
        ENV.get_template(name)
