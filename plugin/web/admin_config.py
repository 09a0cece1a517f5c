"""Admin: the *effective configuration*: every value the running agent uses (the file's, with defaults
filled in), secrets redacted.

Redaction is the logs' own (plugin.logs): a `Secret` shows as `***` and where it came from ("file
/etc/pbxsync/ews.pass", never its value), and every other value also passes `redact`, which scrubs the
config's registered secret values and credential headers from any text (a password pasted into a URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass

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


def _walk(prefix: str, node: object, rows: list[tuple[str, str]], *, users: bool = True) -> None:
    for f in fields(node):  # type: ignore[arg-type]
        if not is_key(f):
            if f.name == "options" and is_dataclass(getattr(node, f.name)):  # a backend's [exchange.x]
                _walk(f"{prefix}options.", getattr(node, f.name), rows)
            continue
        value = getattr(node, f.name)
        if is_dataclass(value) and not isinstance(value, type | Secret | ListenAddress):
            _walk(f"{prefix}{f.name}.", value, rows)
        elif isinstance(value, list) and value and all(is_dataclass(v) for v in value):
            if not users and not prefix and f.name == "users":
                continue  # the top-level [[users]]: left to `users_page_rows`
            for i, item in enumerate(value):
                _walk(f"{prefix}{f.name}[{i}].", item, rows)
        else:
            rows.append((prefix + f.name, shown_value(value)))


def config_rows(config: Config, *, users: bool = True) -> list[tuple[str, str]]:
    """(dotted key, shown value), in the config's own order; users as users[N].key (`users=False`: none)."""
    register_config_secrets(config)  # the daemon has done so already; a no-op then, but never assumed
    rows: list[tuple[str, str]] = []
    _walk("", config, rows, users=users)
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


def users_page_rows(config: Config, first: int, count: int) -> tuple[list[str], list[list[str]]]:
    """`user_table` of the users [first, first + count) only: a page never redacts the other 900."""
    rows: list[tuple[str, str]] = []
    for i, user in enumerate(config.users[first:first + count], start=first):
        _walk(f"users[{i}].", user, rows)
    return user_table(rows)


@dataclass
class ConfigView:
    """What the page shows of one config: its sections, and its users' table page by page as asked for.

    Made once per config object (a reload or a user's settings make a new one): with a thousand users the
    whole table takes tens of milliseconds, and the config is the same for every request."""

    config: Config
    sections: list[tuple[str, list[tuple[str, str]]]]
    pages: dict[int, tuple[list[str], list[list[str]]]] = field(default_factory=dict)

    def users(self, page: int) -> tuple[list[str], list[list[str]]]:
        if page not in self.pages:
            self.pages[page] = users_page_rows(self.config, (page - 1) * USERS_PER_PAGE, USERS_PER_PAGE)
        return self.pages[page]


_LAST: list[ConfigView] = []  # the view of the config (frozen) last shown


def view_of(config: Config) -> ConfigView:
    if not _LAST or _LAST[0].config is not config:
        register_config_secrets(config)
        _LAST[:] = [ConfigView(config, sections(config_rows(config, users=False)))]
    return _LAST[0]


async def config_page(request: web.Request) -> web.StreamResponse:
    admin_only(request)
    config = web_context(request).config
    view = view_of(config)
    raw = request.query.get("page", "1")
    user_count = len(config.users)
    pages = max(1, -(-user_count // USERS_PER_PAGE))
    page = min(max(int(raw), 1), pages) if raw.isdigit() and len(raw) < 6 else 1
    columns, users = view.users(page)
    return render(request, "admin_config.html", title="Configuration", admin_nav=ADMIN_NAV, sections=view.sections,
                  columns=columns, users=users, first=(page - 1) * USERS_PER_PAGE, user_count=user_count, page=page,
                  pages=pages, path_=config.path or "(built in)")


def routes() -> list[web.RouteDef]:
    return [web.get("/admin/config", config_page)]
