"""The sync engine: one pass over the PBX users' mailboxes, each user isolated from the others.

For each user and folder: read the stored sync state, fetch from the source, plan (sync.plan, pure),
then write the data, the new sync state and the success mark in ONE transaction. A source error is
recorded on that folder and changes nothing else; an unexpected bug in one user's pass is logged and
recorded the same way, so one mailbox can never stop or corrupt another's sync.

An item the source read but could not map (`SkippedItem`) is one log line and one row in the store
(sync.store.skipped), never the folder's failure: the rest of the folder is stored and its sync state
advances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.errors import (
    SourceAccessError,
    SourceAuthError,
    SourceBusyError,
    SourceDataError,
    SourceError,
    StoreError,
)
from pbxsync.sync.model import CalendarWindow, Folder, Occurrence, SkippedItem, utc_text
from pbxsync.sync.plan import internal_addresses, plan_calendar, plan_contacts, sync_window, with_resolved_addresses
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import contacts as contact_store
from pbxsync.sync.store import folders
from pbxsync.sync.store import skipped as skip_store
from pbxsync.sync.store.db import Store, in_batches

log = logging.getLogger("pbxsync.sync")

MAX_RESOLVES_PER_PASS = 200
MAX_SKIP_LINES = 20  # per folder and pass; a folder of 50,000 messages must not flood the log


@dataclass
class FolderResult:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    error: str | None = None
    error_kind: str | None = None
    skipped_view: bool = False  # calendar: folder sync saw no change, so no CalendarView was needed
    skipped: int = 0  # items this pass read but could not map (see sync.store.skipped)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class UserSummary:
    extension: str
    mailbox: str
    contacts: FolderResult | None = None
    calendar: FolderResult | None = None

    @property
    def ok(self) -> bool:
        return all(r is None or r.ok for r in (self.contacts, self.calendar))


@dataclass
class PassSummary:
    started: datetime
    users: list[UserSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(u.ok for u in self.users)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for u in self.users for r in (u.contacts, u.calendar) if r is not None)

    @property
    def calendar_changed(self) -> bool:
        return any(u.calendar is not None and (u.calendar.added or u.calendar.updated or u.calendar.deleted)
                   for u in self.users)


def error_kind(exc: BaseException) -> str:
    for cls, kind in ((SourceAuthError, "auth"), (SourceAccessError, "access"), (SourceBusyError, "busy"),
                      (SourceDataError, "data"), (SourceError, "source"), (StoreError, "store")):
        if isinstance(exc, cls):
            return kind
    return "internal"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def log_skipped(mailbox: str, folder: Folder, items: tuple[SkippedItem, ...]) -> None:
    for item in items[:MAX_SKIP_LINES]:
        where = f"{folder.value}/{item.folder}" if item.folder else folder.value
        # %r: folder names and ids come from Exchange; repr keeps a line break from forging a log line
        log.warning("skipped an item in %s folder %r: id %r: %s", mailbox, where, item.item_id[:200],
                    " ".join(item.reason.split()))
    if len(items) > MAX_SKIP_LINES:
        log.warning("skipped %d more items in %s %s", len(items) - MAX_SKIP_LINES, mailbox, folder.value)


AfterPass = Callable[[PassSummary], Awaitable[None]]


class SyncEngine:
    def __init__(self, store: Store, source: MailboxSource, config: Config) -> None:
        self.store = store
        self.source = source
        self.config = config
        self._limit = asyncio.Semaphore(config.sync.concurrency)
        self._user_locks: dict[str, asyncio.Lock] = {}

    async def sync_all(self, now: datetime, users: Iterable[UserConfig] | None = None,
                       folders: Mapping[str, Collection[Folder]] | None = None) -> PassSummary:
        """`folders` (mailbox -> folders) limits the pass, e.g. to the folders a notification named."""
        chosen = list(self.config.users if users is None else users)
        summary = PassSummary(now)
        summary.users = list(await asyncio.gather(*(
            self.sync_user(u, now, None if folders is None else folders.get(u.mailbox.lower(), ()))
            for u in chosen)))
        return summary

    async def sync_user(self, user: UserConfig, now: datetime, only: Collection[Folder] | None = None) -> UserSummary:
        mailbox = user.mailbox.lower()
        lock = self._user_locks.setdefault(mailbox, asyncio.Lock())
        result = UserSummary(user.extension, mailbox)
        async with lock, self._limit:  # a timer pass and a "Sync now" for one user never overlap
            if user.sync_contacts and (only is None or Folder.CONTACTS in only):
                result.contacts = await self._guarded(mailbox, Folder.CONTACTS, now, self._sync_contacts)
            if user.sync_calendar and (only is None or Folder.CALENDAR in only):
                result.calendar = await self._guarded(mailbox, Folder.CALENDAR, now, self._sync_calendar)
        return result

    async def _guarded(self, mailbox: str, folder: Folder, now: datetime,
                       work: Callable[[str, datetime], Awaitable[FolderResult]]) -> FolderResult:
        try:
            return await work(mailbox, now)
        except Exception as exc:
            kind = error_kind(exc)
            if kind == "internal":
                log.exception("sync of %s %s failed unexpectedly", mailbox, folder.value)
            else:
                log.warning("sync of %s %s failed (%s): %s", mailbox, folder.value, kind, one_line(exc))
            try:
                await folders.record_failure(self.store, mailbox, folder, now, one_line(exc), kind)
            except StoreError as store_exc:
                log.error("could not record the failure of %s %s: %s", mailbox, folder.value, store_exc)
            return FolderResult(error=one_line(exc), error_kind=kind)

    async def _sync_contacts(self, mailbox: str, now: datetime) -> FolderResult:
        state = await folders.folder_state(self.store, mailbox, Folder.CONTACTS)
        changes = await self.source.sync_contacts(mailbox, state.sync_state)
        stored = await contact_store.contact_versions(self.store, mailbox)
        plan = plan_contacts(stored.change_keys, changes, stored.folders)
        settled = (*(c.item_id for c in changes.upserts), *changes.deleted_item_ids)
        log_skipped(mailbox, Folder.CONTACTS, changes.skipped)
        async with self.store.transaction() as conn:
            await contact_store.apply_contact_plan(conn, mailbox, plan, now)
            # From an empty state the source reported the whole folder: older skips it did not repeat are gone.
            await skip_store.record_skips(conn, mailbox, Folder.CONTACTS, now, changes.skipped, settled=settled,
                                       complete=not state.sync_state)
            await folders.record_success(conn, mailbox, Folder.CONTACTS, now, changes.sync_state)
        log.info("contacts of %s: %d added, %d updated, %d deleted, %d skipped", mailbox,
                 len(plan.inserts), len(plan.updates), len(plan.deletes), len(changes.skipped))
        return FolderResult(len(plan.inserts), len(plan.updates), len(plan.deletes), skipped=len(changes.skipped))

    async def _sync_calendar(self, mailbox: str, now: datetime) -> FolderResult:
        state = await folders.folder_state(self.store, mailbox, Folder.CALENDAR)
        changes = await self.source.sync_calendar(mailbox, state.sync_state)
        span = sync_window(now, self.config.sync.days_back, self.config.sync.days_ahead)
        window_moved = state.window != span
        window: CalendarWindow | None = None
        # After a failed attempt the source may already have reported (and forgotten) changes the store
        # never received (Graph advances its in-memory mirror), so the window is fetched again.
        if (changes.has_changes or window_moved or not changes.complete or state.last_success is None
                or state.last_error is not None):
            window = await self.source.calendar_window(mailbox, span.start, span.end)
            window = CalendarWindow(window.start, window.end, await self._resolve(mailbox, window.occurrences, now),
                                    window.skipped)
        stored = await calendar_store.occurrence_refs(self.store, mailbox)
        plan = plan_calendar(stored, changes.deleted_item_ids, window)
        unmapped = tuple({s.item_id: s for s in (*changes.skipped, *(window.skipped if window else ()))}.values())
        log_skipped(mailbox, Folder.CALENDAR, unmapped)
        async with self.store.transaction() as conn:
            await calendar_store.apply_calendar_plan(conn, mailbox, plan, now)
            # A fetched window lists every item of the folder's range: its skips replace the stored ones.
            await skip_store.record_skips(conn, mailbox, Folder.CALENDAR, now, unmapped, complete=window is not None,
                                       settled=changes.deleted_item_ids)
            # The folder's sync state advances only together with the data it describes.
            await folders.record_success(conn, mailbox, Folder.CALENDAR, now, changes.sync_state,
                                         span if window is not None else None)
        log.info("calendar of %s: %d added, %d updated, %d deleted, %d skipped%s", mailbox, len(plan.inserts),
                 len(plan.updates), len(plan.deletes), len(unmapped), "" if window is not None else " (no change)")
        return FolderResult(len(plan.inserts), len(plan.updates), len(plan.deletes), skipped_view=window is None,
                            skipped=len(unmapped))

    async def _resolve(self, mailbox: str, occurrences: tuple[Occurrence, ...],
                       now: datetime) -> tuple[Occurrence, ...]:
        """Replace internal X.500 addresses by SMTP, through the cache and then ResolveNames."""
        wanted = internal_addresses(occurrences)
        if not wanted:
            return tuple(with_resolved_addresses(o, {}) for o in occurrences)
        known: dict[str, str] = {}
        cached: set[str] = set()
        for chunk, marks in in_batches(sorted(wanted)):
            async with self.store.conn.execute(
                f"SELECT address, smtp FROM address_cache WHERE address IN ({marks})", chunk
            ) as cur:
                async for address, smtp in cur:
                    cached.add(str(address))
                    if smtp:
                        known[str(address)] = str(smtp).lower()
        fresh: list[tuple[str, str | None]] = []
        for address in sorted(wanted - cached)[:MAX_RESOLVES_PER_PASS]:
            try:
                smtp = await self.source.resolve_address(mailbox, address)
            except SourceError as exc:
                log.warning("could not resolve an internal address for %s: %s", mailbox, one_line(exc))
                break  # try again next pass; unresolved addresses simply stay unmatched
            fresh.append((address, smtp.lower() if smtp else None))
            if smtp:
                known[address] = smtp.lower()
        if fresh:
            async with self.store.transaction() as conn:
                await conn.executemany(
                    "INSERT OR REPLACE INTO address_cache (address, smtp, resolved_at) VALUES (?, ?, ?)",
                    [(a, s, utc_text(now)) for a, s in fresh],
                )
        return tuple(with_resolved_addresses(o, known) for o in occurrences)
