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

USERS_PER_PAGE = 100


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
    """Rows grouped by their first key part (`exchange`, `log`, ...), for one table per section; the
    users (`users[N].key`) are left out: `user_table` shows them, one row per user."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for key, value in rows:
        head, dot, rest = key.partition(".")
        if not head.startswith("users["):
            grouped.setdefault(head if dot else "(top level)", []).append((rest if dot else key, value))
    return list(grouped.items())


def user_table(rows: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """The `[[users]]` entries as (column keys, one row of values per user)."""
    users: dict[str, dict[str, str]] = {}
    for key, value in rows:
        head, dot, rest = key.partition(".")
        if dot and head.startswith("users["):
            users.setdefault(head, {})[rest] = value
    columns = list(next(iter(users.values()), {}))
    return columns, [[entry.get(c, "") for c in columns] for entry in users.values()]


_LAST: list[tuple[Config, list[tuple[str, str]]]] = []  # the config (frozen) last shown and its rows


def rows_of(config: Config) -> list[tuple[str, str]]:
    """`config_rows`, read once per config object (a reload or a user's settings make a new one)."""
    if not _LAST or _LAST[0][0] is not config:
        _LAST[:] = [(config, config_rows(config))]
    return _LAST[0][1]


async def config_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    config = web_context(request).config
    rows = rows_of(config)
    columns, users = user_table(rows)
    raw = request.query.get("page", "1")
    pages = max(1, -(-len(users) // USERS_PER_PAGE))
    page = min(max(int(raw), 1), pages) if raw.isdigit() and len(raw) < 6 else 1
    return render(request, "admin_config.html", title="Configuration", admin_nav=ADMIN_NAV, sections=sections(rows),
                  columns=columns, users=users[(page - 1) * USERS_PER_PAGE:page * USERS_PER_PAGE],
                  first=(page - 1) * USERS_PER_PAGE, user_count=len(users), page=page, pages=pages,
                  path_=config.path or "(built in)")


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/config", config_page)]
