"""What follows every sync pass, for the CLI's "Sync now" and the daemon alike: bookings, then PINs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pbxsync.plugin.booking.expansion import GroupSource, refresh_group_cache
from pbxsync.plugin.booking.pins import ensure_pins
from pbxsync.plugin.booking.reconcile import ReconcileSummary, reconcile_bookings
from pbxsync.plugin.directory import DirectoryEntry, load_directory
from pbxsync.sync.config import Config
from pbxsync.sync.store.db import Store


async def update_bookings(store: Store, config: Config, now: datetime,
                          extra_entries: Sequence[DirectoryEntry] = (),
                          groups: GroupSource | None = None) -> ReconcileSummary:
    """Reconcile the bookings with the synced calendars; give new bookings a PIN when PINs are on.

    `extra_entries` are directory entries from other sources (Asterisk voicemail users); the config's
    users take precedence over them. `groups` (the sync's source) first looks up invited addresses that
    may be groups; without it the answers kept from earlier passes are used.
    """
    directory = await load_directory(store, config, extra_entries)
    if groups is not None:
        await refresh_group_cache(store, groups, directory, config.meetings, now)
    summary = await reconcile_bookings(store, directory, config, now)
    if config.conference.pins:
        await ensure_pins(store, now, config.conference.pin_digits)
    return summary
