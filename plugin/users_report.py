"""Each configured PBX user and the state of their sync, as `pbxsync users --json` prints it and the
portal's admin pages show it: mailbox, room, whether their addresses match meetings, per folder the last
attempt, success and error and the skipped items, synced counts, upcoming bookings they organize.

One reading for both, so the CLI and the portal never disagree about a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pbxsync.plugin.directory import load_directory
from pbxsync.plugin.writeback.store import mailbox_write_backs
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.model import Folder, utc_text
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import contacts as contact_store
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import FolderState, all_folder_states
from pbxsync.sync.store.skipped import SkipSummary, skip_summaries


def folder_json(state: FolderState | None, skips: SkipSummary | None) -> dict[str, Any] | None:
    if state is None:
        return None

    def when(moment: datetime | None) -> str | None:
        return utc_text(moment) if moment else None

    skips = skips or SkipSummary()
    return {"last_attempt": when(state.last_attempt), "last_success": when(state.last_success),
            "last_error": state.last_error, "error_kind": state.error_kind, "skipped": skips.count,
            "skipped_latest": [{"folder": s.location, "item_id": s.item_id, "reason": s.reason,
                                "seen_at": utc_text(s.seen_at)} for s in skips.latest]}


@dataclass(frozen=True)
class UserReport:
    user: UserConfig
    contacts: FolderState | None
    calendar: FolderState | None
    contacts_skipped: SkipSummary | None
    calendar_skipped: SkipSummary | None
    addresses: list[str]  # the addresses meetings are matched by
    aliases: list[str]  # internal X.500 addresses resolved to one of them
    problems: list[str]  # conflicts the directory found for this user
    contact_count: int | None = None  # None: not counted (see `user_reports`)
    occurrence_count: int | None = None
    organized: int = 0  # upcoming scheduled bookings they organize
    write_back: dict[str, Any] | None = None  # its "Join by phone" write-back state (plugin.writeback.store)

    def as_json(self) -> dict[str, Any]:
        u = self.user
        return {
            "extension": u.extension, "name": u.name, "emails": [e.lower() for e in u.email], "room": u.room,
            "sync_contacts": u.sync_contacts, "sync_calendar": u.sync_calendar,
            "contacts": folder_json(self.contacts, self.contacts_skipped),
            "calendar": folder_json(self.calendar, self.calendar_skipped),
            "contact_count": self.contact_count or 0, "occurrence_count": self.occurrence_count or 0,
            "match": {"status": "conflict" if self.problems else "ok", "addresses": self.addresses,
                      "internal_aliases": self.aliases, "problems": self.problems},
            "upcoming_bookings_organized": self.organized,
            "write_back": self.write_back,
        }


async def user_reports(store: Store, config: Config, now: datetime, *, counts: bool = True) -> list[UserReport]:
    """One report per `[[users]]` entry, in config order. `counts=False` skips counting each mailbox's
    contacts and occurrences (a scan of both tables) for readers that do not show them."""
    states = {(s.mailbox, s.folder): s for s in await all_folder_states(store)}
    skips = await skip_summaries(store)
    contact_counts = await contact_store.contact_counts(store) if counts else {}
    occurrence_counts = await calendar_store.occurrence_counts(store) if counts else {}
    directory = await load_directory(store, config)
    async with store.conn.execute(
        "SELECT organizer_extension, count(*) FROM bookings WHERE state = 'scheduled' AND end_utc > ? "
        "GROUP BY organizer_extension", (utc_text(now),)
    ) as cur:
        organized = {str(ext): int(n) async for ext, n in cur}
    write_backs = await mailbox_write_backs(store)
    aliases_of: dict[str, list[str]] = {}  # smtp -> the X.500 addresses resolved to it, grouped once
    for alias, smtp in directory.resolved.items():
        if smtp:
            aliases_of.setdefault(smtp, []).append(alias)
    out: list[UserReport] = []
    for u in config.users:
        mailbox = u.mailbox.lower()
        entry = directory.by_extension(u.extension)
        matched = list(entry.emails) if entry else []
        out.append(UserReport(
            u, states.get((mailbox, Folder.CONTACTS)), states.get((mailbox, Folder.CALENDAR)),
            skips.get((mailbox, Folder.CONTACTS)), skips.get((mailbox, Folder.CALENDAR)), matched,
            sorted(a for smtp in set(matched) for a in aliases_of.get(smtp, ())),
            [c for c in directory.conflicts if f"extension {u.extension} " in c],
            contact_counts.get(mailbox, 0) if counts else None, occurrence_counts.get(mailbox, 0) if counts else None,
            organized.get(u.extension, 0), write_backs.get(mailbox)))
    return out


async def users_report(store: Store, config: Config, now: datetime) -> list[dict[str, Any]]:
    """One JSON object per `[[users]]` entry, in config order (the `pbxsync users --json` contract)."""
    return [r.as_json() for r in await user_reports(store, config, now)]
