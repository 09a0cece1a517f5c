"""The portal's pages: one module per page (or group of pages), `plugin/web/pages_<name>.py`.

A pages module defines `routes() -> list[web.RouteDef]` and may define `NAV: tuple[NavLink, ...]` (its
entries in the navigation, in PAGE_MODULES order). To add a page, write the module and list its name here.
Every handler starts with `require_user` / `require_admin` / `require_self_or_admin` (plugin.web.auth)
unless the page is for signed-out visitors; forms carry `{{ csrf }}` in a field named `csrf`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from aiohttp import web

from pbxsync.plugin.web.render import NavLink

PAGE_MODULES = (
    "signin",
    "mysync",
    "contacts",
    "conferences",
    "password",
    "admin",
)


def page_routes() -> tuple[list[web.RouteDef], tuple[NavLink, ...]]:
    routes: list[web.RouteDef] = []
    nav: list[NavLink] = []
    for name in PAGE_MODULES:
        module = importlib.import_module(f"pbxsync.plugin.web.pages_{name}")
        routes += cast(Callable[[], list[web.RouteDef]], module.routes)()
        nav += getattr(module, "NAV", ())
    return routes, tuple(nav)
