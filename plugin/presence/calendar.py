"""Presence's view of the store: per user, the calendar items that may still matter, times and show-as only.

The subject, location and attendees of an item are never selected here: a private meeting keeps its
status and times for presence and nothing else (issue 17).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from pbxsync.plugin.presence.asterisk import Templates
from pbxsync.plugin.presence.state import BusyItem
from pbxsync.sync.config import Config
from pbxsync.sync.model import ResponseType, ShowAs, parse_utc, show_as_from, utc_text
from pbxsync.sync.store.db import Store, in_batches


@dataclass(frozen=True)
class PresenceUser:
    extension: str
    mailbox: str  # lower-case
    forward: str = ""  # [[users]] presence_forward


@dataclass(frozen=True)
class PresenceSettings:
    users: tuple[PresenceUser, ...]
    busy_statuses: frozenset[ShowAs]
    templates: Templates
    zone: tzinfo | None  # None: the host's local zone
    released: tuple[str, ...] = ()  # extensions of users who opted out: set free once at start, then left alone

    @classmethod
    def from_config(cls, config: Config) -> PresenceSettings:
        p = config.presence
        users = tuple(PresenceUser(u.extension, u.mailbox.lower(), u.presence_forward)
                      for u in config.users if u.presence and u.sync_calendar)
        released = tuple(u.extension for u in config.users if not (u.presence and u.sync_calendar))
        return cls(users, frozenset(show_as_from(s) for s in p.busy_statuses), Templates(p.message, p.oof_message),
                   ZoneInfo(p.timezone) if p.timezone else None, released)

    def user(self, extension: str) -> PresenceUser | None:
        return next((u for u in self.users if u.extension == extension), None)


async def load_items(store: Store, mailboxes: Iterable[str], since: datetime) -> dict[str, list[BusyItem]]:
    """mailbox -> its items ending after `since` (every mailbox asked for has an entry)."""
    wanted = sorted(set(mailboxes))
    found: dict[str, list[BusyItem]] = {m: [] for m in wanted}
    for chunk, marks in in_batches(wanted):
        async with store.conn.execute(
            f"""SELECT mailbox, start_utc, end_utc, show_as, is_cancelled, my_response FROM occurrences
                WHERE mailbox IN ({marks}) AND end_utc > ?""", (*chunk, utc_text(since)),
        ) as cur:
            async for mailbox, start, end, show_as, cancelled, response in cur:
                found[str(mailbox)].append(BusyItem(parse_utc(str(start)), parse_utc(str(end)), show_as_from(show_as),
                                                    bool(cancelled), str(response) == ResponseType.DECLINE.value))
    return found
