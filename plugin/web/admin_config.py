"""Admin: the *effective configuration*: every value the running agent uses (the file's, with defaults
filled in), secrets redacted.

Redaction is the logs' own (plugin.logs): a `Secret` shows as `***` and where it came from ("file
/etc/pbxsync/ews.pass", never its value), and every other value also passes `redact`, which scrubs the
config's registered secret values and credential headers from any text (a password pasted into a URL).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from aiohttp import web

from pbxsync.plugin.logs import REDACTED, redact, register_config_secrets
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.pages_admin import ADMIN_NAV, admin_only
from pbxsync.plugin.web.render import render
from pbxsync.sync.config import Config
from pbxsync.sync.config_tables import is_key
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret


def shown_value(value: object) -> str:
    if isinstance(value, Secret):
        return f"{REDACTED} (from {value.origin})" if value else "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shown_value(v) for v in value) + "]"
    if value is None:
        return "(not set)"
    return redact(str(value))


def config_rows(config: Config) -> list[tuple[str, str]]:
    """(dotted key, shown value), in the config's own order; users as users[N].key."""
    register_config_secrets(config)  # the daemon has done so already; a no-op then, but never assumed
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, node: object) -> None:
        for f in fields(node):  # type: ignore[arg-type]
            if not is_key(f):
                if f.name == "options" and is_dataclass(getattr(node, f.name)):  # a backend's [exchange.x]
                    walk(f"{prefix}options.", getattr(node, f.name))
                continue
            value = getattr(node, f.name)
            if is_dataclass(value) and not isinstance(value, type | Secret | ListenAddress):
                walk(f"{prefix}{f.name}.", value)
            elif isinstance(value, list) and value and all(is_dataclass(v) for v in value):
                for i, item in enumerate(value):
                    walk(f"{prefix}{f.name}[{i}].", item)
            else:
                rows.append((prefix + f.name, shown_value(value)))

    walk("", config)
    return rows


def sections(rows: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Rows grouped by their first key part (`exchange`, `users[0]`, ...), for one table per section."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for key, value in rows:
        head, dot, rest = key.partition(".")
        grouped.setdefault(head if dot else "(top level)", []).append((rest if dot else key, value))
    return list(grouped.items())


async def config_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    config = web_context(request).config
    return render(request, "admin_config.html", title="Configuration", admin_nav=ADMIN_NAV,
                  sections=sections(config_rows(config)), path_=config.path or "(built in)")


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/config", config_page)]
