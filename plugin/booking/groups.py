"""Invitations to groups, the pure part: which invited addresses to look up, and what a group counts as.

An attendee address that matches no PBX user may be a group (a distribution group, a Microsoft 365 group,
a mail-enabled security group). The after-sync step asks the source what such an address stands for
(`MailboxSource.expand_group`) and keeps the answer for `[meetings] group_cache_minutes`, "not a group"
included; the planner then reads the kept answers as plain data. Rules:

- Only addresses of meetings that are conferences (a `PBX` location), not cancelled and not over, are
  looked up, and only in the mail domains that can hold the organisation's groups (`group_domains`, by
  default the PBX users' own domains): an external guest's address is never one of our groups, so a
  meeting with 480 guests costs no look-up.
- A kept answer is asked again once it is older than the cache time (so a raised `max_group_members`
  reaches a group read only in part within that time).
- At most MAX_LOOKUPS_PER_PASS addresses per pass, soonest meetings first; the rest follow next pass.
- A group with more people than `max_group_members` is not expanded: it is listed as unmatched, with why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pbxsync.plugin.booking.location import parse_location
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import MeetingsConfig
from pbxsync.sync.model import AttendeeKind, GroupMembers, Occurrence

MAX_LOOKUPS_PER_PASS = 100


@dataclass(frozen=True)
class GroupCacheEntry:
    """What Exchange said about an address: the group (None: it is not a group), and when."""

    address: str
    group: GroupMembers | None
    checked_at: datetime


@dataclass(frozen=True)
class GroupLookup:
    mailbox: str  # a synced PBX user's mailbox holding the meeting: the account the source asks as
    address: str


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def group_domains(directory: Directory, configured: Sequence[str]) -> frozenset[str]:
    """Where groups can live: the configured domains, else every domain of a PBX user's addresses."""
    if configured:
        return frozenset(d.strip().lower() for d in configured if d.strip())
    return frozenset(domain_of(e) for entry in directory.entries for e in entry.emails if "@" in e)


def needs_lookup(entry: GroupCacheEntry | None, now: datetime, settings: MeetingsConfig) -> bool:
    return entry is None or now - entry.checked_at >= timedelta(minutes=settings.group_cache_minutes)


def plan_group_lookups(copies: Iterable[tuple[str, Occurrence]], directory: Directory,
                       cache: Mapping[str, GroupCacheEntry], now: datetime,
                       settings: MeetingsConfig) -> list[GroupLookup]:
    """The invited addresses to ask Exchange about in this pass (see the module rules)."""
    domains = group_domains(directory, settings.group_domains)
    synced = directory.calendar_mailboxes()
    wanted: dict[str, tuple[datetime, str]] = {}  # address -> (soonest meeting start, mailbox to ask as)
    verdicts: dict[str, str | None] = {}  # attendee address as written -> address to ask about, or None
    for mailbox, occ in copies:
        if (mailbox not in synced or occ.is_cancelled or max(occ.start, occ.end) <= now
                or parse_location(occ.location) is None):
            continue
        for attendee in occ.attendees:
            if attendee.kind is AttendeeKind.RESOURCE:
                continue
            if attendee.email not in verdicts:  # each address once, however many copies list it
                address = directory.smtp(attendee.email)
                asked = (directory.match(attendee.email) is None and "@" in address
                         and domain_of(address) in domains and needs_lookup(cache.get(address), now, settings))
                verdicts[attendee.email] = address if asked else None
            address_or_none = verdicts[attendee.email]
            if address_or_none is None:
                continue
            address = address_or_none
            known = wanted.get(address)
            if known is None or (occ.start, mailbox) < known:
                wanted[address] = (occ.start, mailbox)
    ordered = sorted(wanted.items(), key=lambda item: (item[1][0], item[0]))
    return [GroupLookup(mailbox, address) for address, (_, mailbox) in ordered[:MAX_LOOKUPS_PER_PASS]]


def known_groups(cache: Mapping[str, GroupCacheEntry]) -> dict[str, GroupMembers]:
    """The groups the planner expands (stale ones too: a failed look-up never drops anyone)."""
    return {address: entry.group for address, entry in cache.items() if entry.group is not None}


def too_large(group: GroupMembers, max_members: int) -> str | None:
    """Why `group` is not expanded, or None when it is."""
    if group.complete and len(group.members) <= max_members:
        return None
    if group.complete or len(group.members) > max_members:
        size = f"{len(group.members)}" if group.complete else f"more than {max_members}"
        return f"group of {size} people, more than [meetings] max_group_members = {max_members}: not expanded"
    return "group too deeply nested to read in full: not expanded"
