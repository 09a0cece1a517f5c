"""The per-user options employees may change themselves on the portal's *My sync* page.

Precedence, for each option of a user (`sync_contacts`, `sync_calendar`, `room`):
1. the user's own choice, stored in SQLite (`web_user_settings`) — only if `[web] user_settings` lists the
   option, and (for a room) only while the room is still one of `[pbx] rooms`;
2. otherwise the `[[users]]` value in the config file (which is the admin's; an option left out of
   `[web] user_settings` is thereby forced to it; choices made earlier are kept but not used);
3. otherwise the built-in default (contacts and calendar on, no room: the pool decides).
`effective_config` applies that to a whole config; the daemon runs its parts with the result, so the sync
engine, notifications, bookings and AUTOCALL all read the same values. Pure over plain data, plus two
store functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from pbxsync.sync.config import DIALABLE, WEB_USER_SETTINGS, Config, UserConfig
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store

Choices = Mapping[str, Mapping[str, object]]  # extension -> {option: value}


def valid_choice(config: Config, name: str, value: object) -> bool:
    if name in ("sync_contacts", "sync_calendar"):
        return isinstance(value, bool)
    if name == "room":  # "" = no preference: the pool decides
        return isinstance(value, str) and (value == "" or (DIALABLE.fullmatch(value) is not None
                                                            and value in config.pbx.rooms))
    return False


def effective_user(config: Config, user: UserConfig, choices: Mapping[str, object]) -> UserConfig:
    allowed = set(config.web.user_settings)
    changes = {name: value for name, value in choices.items()
               if name in allowed and name in WEB_USER_SETTINGS and valid_choice(config, name, value)}
    return replace(user, **changes) if changes else user  # type: ignore[arg-type]


def effective_config(config: Config, choices: Choices) -> Config:
    """The config with each user's allowed choices applied (the file's config when there are none)."""
    if not choices or not config.web.user_settings:
        return config
    users = [effective_user(config, u, choices.get(u.extension, {})) for u in config.users]
    return replace(config, users=users)


async def load_choices(store: Store, extension: str | None = None) -> dict[str, dict[str, object]]:
    """Every user's choices (extension -> option -> value), or only those of `extension`."""
    choices: dict[str, dict[str, object]] = {}
    where, args = ("WHERE extension = ?", (extension,)) if extension is not None else ("", ())
    async with store.conn.execute(f"SELECT extension, name, value FROM web_user_settings {where}", args) as cur:
        async for owner, name, value in cur:
            try:
                choices.setdefault(str(owner), {})[str(name)] = json.loads(str(value))
            except ValueError:
                continue  # a damaged row counts as no choice
    return choices


async def save_choices(store: Store, extension: str, choices: Mapping[str, object], now: datetime) -> None:
    async with store.transaction() as conn:
        await conn.executemany(
            """INSERT INTO web_user_settings (extension, name, value, changed_at) VALUES (?, ?, ?, ?)
               ON CONFLICT (extension, name) DO UPDATE SET value = excluded.value, changed_at = excluded.changed_at""",
            [(extension, name, json.dumps(value), utc_text(now)) for name, value in choices.items()])
