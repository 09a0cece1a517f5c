"""Invitations to groups, the IO part: after a sync pass, ask the source about invited addresses that
match no PBX user and keep the answers in `group_expansions` (the rules are plugin/booking/groups.py).

A failed look-up changes nothing: the kept answer (even a stale one) stays in use, and an address never
answered stays an unmatched invitee. An access error (Graph without GroupMember.Read.All, an EWS account
that may not expand the list) stops the look-ups for the pass, so one missing permission costs one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pbxsync.plugin.booking.groups import GroupCacheEntry, GroupLookup, plan_group_lookups
from pbxsync.plugin.booking.location import parse_location
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import MeetingsConfig
from pbxsync.sync.errors import SourceAccessError, SourceAuthError, SourceError
from pbxsync.sync.model import Attendee, GroupMembers, Occurrence, parse_utc, utc_text
from pbxsync.sync.store.calendar import attendees_from_json
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.bookings")

CONCURRENT_LOOKUPS = 4
FORGET_AFTER = timedelta(days=30)  # answers nobody asked for in this long are dropped


class GroupSource(Protocol):
    async def expand_group(self, mailbox: str, address: str, *,
                           max_members: int = 200) -> GroupMembers | None: ...


async def load_group_cache(store: Store) -> dict[str, GroupCacheEntry]:
    found: dict[str, GroupCacheEntry] = {}
    async with store.conn.execute(
        "SELECT address, is_group, name, members, complete, checked_at FROM group_expansions") as cur:
        async for address, is_group, name, members, complete, checked_at in cur:
            try:
                people = json.loads(members)
                group = GroupMembers(str(address), str(name), tuple(str(m) for m in people), bool(complete)) \
                    if is_group else None
                found[str(address)] = GroupCacheEntry(str(address), group, parse_utc(str(checked_at)))
            except (ValueError, TypeError):
                continue  # an unreadable row is asked again
    return found


async def _upcoming_conference_copies(store: Store, now: datetime) -> list[tuple[str, Occurrence]]:
    """Synced copies of meetings not over yet whose location asks for a conference (attendees parsed
    only for those)."""
    found: list[tuple[str, Occurrence]] = []
    lists: dict[str, tuple[Attendee, ...]] = {}  # copies of one meeting list the same attendees: parse once
    async with store.conn.execute(
        "SELECT mailbox, uid, start_utc, end_utc, location, attendees FROM occurrences "
        "WHERE end_utc > ? AND is_cancelled = 0", (utc_text(now),)) as cur:
        async for mailbox, uid, start, end, location, text in cur:
            if parse_location(str(location)) is None:
                continue
            try:
                attendees = lists.get(text)
                if attendees is None:
                    attendees = lists[text] = attendees_from_json(str(text))
                occ = Occurrence(item_id="", change_key="", uid=str(uid), start=parse_utc(str(start)),
                                 end=parse_utc(str(end)), location=str(location), attendees=attendees)
            except (ValueError, TypeError, KeyError):
                continue
            found.append((str(mailbox).lower(), occ))
    return found


async def refresh_group_cache(store: Store, source: GroupSource, directory: Directory, settings: MeetingsConfig,
                              now: datetime) -> int:
    """Look up this pass's invited addresses (plan_group_lookups) and keep the answers; returns how many
    addresses were answered."""
    cache = await load_group_cache(store)
    lookups = plan_group_lookups(await _upcoming_conference_copies(store, now), directory, cache, now, settings)
    answers = await _ask(source, lookups, settings.max_group_members)
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT OR REPLACE INTO group_expansions (address, is_group, name, members, complete, checked_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(address, int(group is not None), group.name if group else "",
              json.dumps(list(group.members) if group else []), int(group.complete if group else True),
              utc_text(now)) for address, group in answers])
        await conn.execute("DELETE FROM group_expansions WHERE checked_at < ?", (utc_text(now - FORGET_AFTER),))
    if answers:
        groups = sum(1 for _, g in answers if g is not None)
        log.info("invited addresses looked up: %d, of them groups: %d", len(answers), groups)
    return len(answers)


async def _ask(source: GroupSource, lookups: Sequence[GroupLookup],
               max_members: int) -> list[tuple[str, GroupMembers | None]]:
    gate = asyncio.Semaphore(CONCURRENT_LOOKUPS)
    denied = asyncio.Event()

    async def one(lookup: GroupLookup) -> tuple[str, GroupMembers | None] | None:
        async with gate:
            if denied.is_set():
                return None
            try:
                return lookup.address, await source.expand_group(lookup.mailbox, lookup.address,
                                                                 max_members=max_members)
            except (SourceAuthError, SourceAccessError) as exc:
                if not denied.is_set():
                    denied.set()
                    log.warning("group look-ups stopped for this pass: %s (Graph needs the GroupMember.Read.All "
                                "permission; see docs/meetings.md)", exc)
                return None
            except SourceError as exc:
                log.warning("could not look up the invited address %s: %s", lookup.address, exc)
                return None

    results = await asyncio.gather(*(one(lookup) for lookup in lookups))
    return [r for r in results if r is not None]
