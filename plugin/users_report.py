"""Each configured PBX user and the state of their sync, as `pbxsync users --json` prints it and the
portal's admin pages show it: mailbox, room, whether their addresses match meetings, per folder the last
attempt, success and error and the skipped items, synced counts, upcoming bookings they organize.

One reading for both, so the CLI and the portal never disagree about a user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pbxsync.plugin.directory import load_directory
from pbxsync.plugin.writeback.store import mailbox_write_backs
from pbxsync.sync.config import Config
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


async def users_report(store: Store, config: Config, now: datetime) -> list[dict[str, Any]]:
    """One JSON object per `[[users]]` entry, in config order (the `pbxsync users --json` contract)."""
    states = {(s.mailbox, s.folder): s for s in await all_folder_states(store)}
    skips = await skip_summaries(store)
    contact_counts = await contact_store.contact_counts(store)
    occurrence_counts = await calendar_store.occurrence_counts(store)
    directory = await load_directory(store, config)
    async with store.conn.execute(
        "SELECT organizer_extension, count(*) FROM bookings WHERE state = 'scheduled' AND end_utc > ? "
        "GROUP BY organizer_extension", (utc_text(now),)
    ) as cur:
        organized = {str(ext): int(n) async for ext, n in cur}
    write_backs = await mailbox_write_backs(store)
    out: list[dict[str, Any]] = []
    for u in config.users:
        mailbox = u.mailbox.lower()
        entry = directory.by_extension(u.extension)
        matched = list(entry.emails) if entry else []
        aliases = sorted(a for a, smtp in directory.resolved.items() if smtp and smtp in matched)
        problems = [c for c in directory.conflicts if f"extension {u.extension} " in c]
        out.append({
            "extension": u.extension, "name": u.name, "emails": [e.lower() for e in u.email], "room": u.room,
            "sync_contacts": u.sync_contacts, "sync_calendar": u.sync_calendar,
            "contacts": folder_json(states.get((mailbox, Folder.CONTACTS)), skips.get((mailbox, Folder.CONTACTS))),
            "calendar": folder_json(states.get((mailbox, Folder.CALENDAR)), skips.get((mailbox, Folder.CALENDAR))),
            "contact_count": contact_counts.get(mailbox, 0), "occurrence_count": occurrence_counts.get(mailbox, 0),
            "match": {"status": "conflict" if problems else "ok", "addresses": matched,
                      "internal_aliases": aliases, "problems": problems},
            "upcoming_bookings_organized": organized.get(u.extension, 0),
            "write_back": write_backs.get(mailbox),
        })
    return out
