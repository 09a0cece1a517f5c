"""After each sync: load what the sync stored, plan the bookings, apply the actions in one transaction."""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pbxsync.plugin.booking.expansion import load_group_cache
from pbxsync.plugin.booking.groups import known_groups
from pbxsync.plugin.booking.model import ActionKind, meeting_key
from pbxsync.plugin.booking.planner import plan_bookings
from pbxsync.plugin.booking.store import load_bookings_for_planning, load_copies, load_mailbox_syncs, write_actions
from pbxsync.plugin.directory import Directory, load_address_cache
from pbxsync.sync.config import Config
from pbxsync.sync.errors import StoreError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.bookings")


@dataclass(frozen=True)
class ReconcileSummary:
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    rejected: int = 0
    booking_ids: tuple[int, ...] = ()  # every booking touched, for the scheduler to re-arm

    @property
    def changed(self) -> bool:
        return bool(self.booking_ids)


async def reconcile_bookings(store: Store, directory: Directory, config: Config, now: datetime) -> ReconcileSummary:
    """Bring the bookings in line with the synced calendars. `directory` gives the PBX users (the
    current address cache is applied here); `now` decides what is history."""
    if now.tzinfo is None:
        raise ValueError("reconcile_bookings needs a timezone-aware now")
    try:
        # One transaction from reading to writing: a concurrent reconcile (timer pass and "Sync now")
        # waits instead of planning from the same snapshot and inserting the same booking twice.
        async with store.transaction() as conn:
            directory = directory.with_resolved(await load_address_cache(store))
            copies, broken = await load_copies(store)
            mailboxes = await load_mailbox_syncs(store)
            for mailbox in broken:
                if mailbox in mailboxes:
                    mailboxes[mailbox] = replace(mailboxes[mailbox], trusted=False)
            earliest = min((c.occurrence.start for c in copies), default=now)
            horizon = min(earliest, now) - timedelta(days=1)
            existing = await load_bookings_for_planning(store, horizon,
                                                        {meeting_key(c.occurrence)[0] for c in copies})
            groups = known_groups(await load_group_cache(store))
            actions = plan_bookings(copies, mailboxes, directory, existing, config.pbx.rooms, now, groups,
                                    config.meetings.max_group_members)
            touched = await write_actions(conn, actions, now)
    except sqlite3.Error as exc:
        raise StoreError(f"reconciling bookings failed: {exc}") from exc
    counts = Counter(a.kind for a in actions)
    summary = ReconcileSummary(
        created=counts[ActionKind.CREATE], updated=counts[ActionKind.UPDATE],
        cancelled=counts[ActionKind.CANCEL], rejected=counts[ActionKind.REJECT],
        booking_ids=tuple(touched))
    if actions:
        log.info("bookings: %d created, %d updated, %d cancelled, %d rejected", summary.created,
                 summary.updated, summary.cancelled, summary.rejected)
    return summary
