"""Pages from Jinja2 templates: one Environment, autoescape on for every template.

Every value from Exchange (names, subjects, folder errors) reaches a page only through `{{ value }}`,
which escapes it; no template may use `|safe` on such a value. `render` adds what the layout needs: the
signed-in user, the navigation, the CSRF token for forms, the language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from pbxsync.plugin.web.auth import current_user, form_token
from pbxsync.plugin.web.chart import Chart

LANG = "en"


@dataclass(frozen=True)
class NavLink:
    """An entry of the navigation: pages modules list theirs in `NAV`."""

    title: str
    path: str
    admin_only: bool = False


ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("pbxsync.plugin.web", "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,  # a misspelt variable fails the test instead of rendering blank
    trim_blocks=True,
    lstrip_blocks=True,
)



def when(moment: datetime | None) -> str:
    """An instant as people read it; the pages say UTC outright rather than guess the reader's zone."""
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


ENV.filters["when"] = when


@lru_cache(maxsize=32)
def svg_chart(chart: Chart, chart_id: str, title: str, desc: str) -> Markup:
    """A chart's SVG (templates/_chart.html), rendered once per distinct chart: the outcomes chart is the
    same for every admin until a call ends, and drawing its bars took most of the page's time."""
    drawn = ENV.get_template("_chart.html").module.svg_chart(chart, chart_id, title, desc)  # type: ignore[attr-defined]
    assert isinstance(drawn, Markup)  # a macro's output under autoescape: escaped already
    return drawn


ENV.globals["svg_chart"] = svg_chart
NAV_KEY: web.AppKey[tuple[NavLink, ...]] = web.AppKey("pbxsync_web_nav", tuple)


def render(request: web.Request, template: str, *, status: int = 200, title: str = "", **values: Any) -> web.Response:
    user = current_user(request)
    nav = [link for link in request.app[NAV_KEY] if user is not None and (user.is_admin or not link.admin_only)]
    html = ENV.get_template(template).render(
        lang=LANG, title=title, user=user, nav=nav, path=request.path, csrf=form_token(request), **values)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
