"""Pure sync decisions: given what is stored and what a source returned, what to write.

No IO here. The engine loads the stored index, asks the planner, and applies the plan in one
transaction. The rules that keep data safe live here so they can be tested exhaustively:
- an upsert is written only when the item is new or its change key (or its folder, after a folder was
  renamed or moved) differs;
- a contact is deleted only when Exchange said so explicitly;
- an occurrence is deleted only when Exchange said so explicitly (ItemId deletion of it or of its
  series master), or when a COMPLETE window fetch no longer holds it and it lies inside that window.
  Occurrences outside the fetched window are never touched, so a shrinking or sliding window cannot
  cancel anything. An item the window returned but the source could not map (`CalendarWindow.skipped`)
  keeps what is stored for it; a skipped item without an id could be any stored one, so then nothing is
  deleted for being absent from that window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from pbxsync.sync.model import CalendarWindow, Contact, ContactChanges, Occurrence, is_internal_address

# Occurrences that ended this long before the window start are pruned; bookings keep their own history.
HISTORY_KEEP = timedelta(days=30)


@dataclass(frozen=True)
class ContactPlan:
    inserts: tuple[Contact, ...] = ()
    updates: tuple[Contact, ...] = ()
    deletes: tuple[str, ...] = ()  # item ids

    @property
    def is_empty(self) -> bool:
        return not (self.inserts or self.updates or self.deletes)


def plan_contacts(stored_change_keys: dict[str, str], changes: ContactChanges,
                  stored_folders: Mapping[str, str] | None = None) -> ContactPlan:
    latest: dict[str, Contact] = {}
    for contact in changes.upserts:  # a page may repeat an item; the last copy wins
        latest[contact.item_id] = contact
    deleted = [i for i in dict.fromkeys(changes.deleted_item_ids) if i in stored_change_keys or i in latest]
    gone = set(deleted)
    inserts = tuple(c for i, c in latest.items() if i not in stored_change_keys and i not in gone)
    folders = stored_folders or {}
    updates = tuple(c for i, c in latest.items()
                    if i in stored_change_keys and i not in gone
                    and (stored_change_keys[i] != c.change_key or folders.get(i, c.folder) != c.folder))
    return ContactPlan(inserts, updates, tuple(i for i in deleted if i in stored_change_keys))


@dataclass(frozen=True)
class StoredOccurrenceRef:
    """What the planner needs to know about a stored occurrence."""

    item_id: str
    change_key: str
    series_item_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CalendarPlan:
    inserts: tuple[Occurrence, ...] = ()
    updates: tuple[Occurrence, ...] = ()
    deletes: tuple[str, ...] = ()  # item ids

    @property
    def is_empty(self) -> bool:
        return not (self.inserts or self.updates or self.deletes)


def _overlaps(ref: StoredOccurrenceRef, start: datetime, end: datetime) -> bool:
    return ref.start < end and (ref.end > start or ref.start >= start)


def plan_calendar(
    stored: dict[str, StoredOccurrenceRef],
    deleted_item_ids: tuple[str, ...],
    window: CalendarWindow | None,
) -> CalendarPlan:
    """`window` is None when the folder sync showed nothing worth a CalendarView."""
    explicit = set(deleted_item_ids)
    deletes = {i for i, ref in stored.items()
               if i in explicit or (ref.series_item_id and ref.series_item_id in explicit)}
    inserts: list[Occurrence] = []
    updates: list[Occurrence] = []
    if window is not None:
        fetched: dict[str, Occurrence] = {}
        for occ in window.occurrences:
            fetched[occ.item_id] = occ
        for item_id, occ in fetched.items():
            if item_id in explicit or occ.series_item_id in explicit:
                continue  # an explicit deletion beats a view fetched around the same time
            ref = stored.get(item_id)
            if ref is None:
                inserts.append(occ)
            elif ref.change_key != occ.change_key or ref.start != occ.start or ref.end != occ.end:
                updates.append(occ)
        kept = {s.item_id for s in window.skipped}
        if "" in kept:
            return CalendarPlan(tuple(inserts), tuple(updates), tuple(sorted(deletes)))
        for item_id, ref in stored.items():
            if item_id in fetched or item_id in kept:
                continue
            if _overlaps(ref, window.start, window.end) or ref.end < window.start - HISTORY_KEEP:
                deletes.add(item_id)
    return CalendarPlan(tuple(inserts), tuple(updates), tuple(sorted(deletes)))


class SyncWindow(NamedTuple):
    """The span of calendar a pass reads: [start, end), UTC."""

    start: datetime
    end: datetime


def sync_window(now: datetime, days_back: int, days_ahead: int) -> SyncWindow:
    """The calendar window, snapped to UTC midnights so it moves once a day, not on every pass."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return SyncWindow(midnight - timedelta(days=days_back), midnight + timedelta(days=days_ahead + 1))


def internal_addresses(occurrences: tuple[Occurrence, ...]) -> set[str]:
    """Addresses that are not SMTP (X.500 / legacyExchangeDN) and need a ResolveNames look-up."""
    found: set[str] = set()
    for occ in occurrences:
        for address in (occ.organizer_email, *(a.email for a in occ.attendees)):
            if is_internal_address(address):
                found.add(address.lower())
    return found


def with_resolved_addresses(occ: Occurrence, smtp: dict[str, str]) -> Occurrence:
    from dataclasses import replace

    def fix(address: str) -> str:
        return smtp.get(address.lower(), address) if is_internal_address(address) else address.lower()

    # Only changed attendees are copied: a 500-attendee meeting mostly has nothing to change.
    attendees = tuple(a if (email := fix(a.email)) == a.email else replace(a, email=email) for a in occ.attendees)
    return replace(occ, organizer_email=fix(occ.organizer_email), attendees=attendees)
