"""The Microsoft Graph source: app-only OAuth, calendarView delta and contacts delta (Exchange Online).

Calendar. Graph's `calendarView/delta` is bound to a window fixed by the round's first request and
returns occurrences (singles, occurrences, exceptions), not series masters. The source keeps, per
mailbox, an in-memory mirror of the window it last fetched completely (occurrences by id plus the
deltaLink); applying a delta round to it yields the complete window again. So:

- `sync_calendar(mailbox, state)` runs one delta round (one request when nothing changed) and reports
  the changed and `@removed` occurrence ids. Its state (JSON) holds the window, the deltaLink and the
  series-master UIDs, so after a restart change detection continues without a full fetch.
- `calendar_window(mailbox, start, end)` returns the mirror after an incremental round when the mirror
  covers exactly [start, end); otherwise (first call in this process, window slid) it runs a full round
  for the new window and makes that the mirror.
- 410 Gone (syncStateNotFound, resyncRequired) starts a clean full round; nothing is deleted that a
  complete fetch did not show missing.

Graph gives each occurrence of a series its own iCalUId; the meeting's UID (what EWS reports, and the
dedupe key) is the series master's iCalUId, fetched once per series and remembered.

Contacts. A delta round per contact folder: the default folder (`/contacts/delta`) and every folder
under it (`/contactFolders`, recursively). The state keeps each folder's deltaLink, path and item ids,
so a vanished folder or a 410 resync reports exactly the contacts that are gone, and a renamed folder is
read again in full so its contacts carry the new path. A row that cannot be mapped is a `SkippedItem`.
Graph's contacts endpoints return contacts only: contact groups, messages and documents filed in a
contacts folder never reach pbxsync over Graph.

Over 400 lines on purpose: the calendar mirror and the contact folders share the delta-round machinery and the
per-mailbox state of one source; the mapping and HTTP already live in graph_mapping.py and graph_client.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from pbxsync.sync.config import ExchangeConfig, SyncConfig
from pbxsync.sync.errors import SourceDataError, SourceError
from pbxsync.sync.model import (
    CalendarChanges,
    CalendarWindow,
    Contact,
    ContactChanges,
    Folder,
    GroupMembers,
    Occurrence,
    PhoneKind,
    PhoneNumber,
    SkippedItem,
    is_internal_address,
    utc_text,
)
from pbxsync.sync.phones import normalise_phone
from pbxsync.sync.plan import sync_window
from pbxsync.sync.sources.contact_fields import MAX_CONTACT_FOLDERS, folder_path, is_system_folder
from pbxsync.sync.sources.graph_auth import AppCredentials, TokenProvider, scope_for
from pbxsync.sync.sources.graph_client import ClientLimits, DeltaGoneError, GraphClient, Sleep, user_path
from pbxsync.sync.sources.graph_groups import find_group
from pbxsync.sync.sources.graph_mapping import (
    PhoneBuilder,
    contact_to_model,
    event_body,
    event_to_occurrence,
    is_removed,
    removed_row,
)
from pbxsync.sync.sources.kept_bodies import KeptBodies

log = logging.getLogger("pbxsync.exchange.graph")

STATE_VERSION = 1


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DeltaRound:
    rows: list[dict[str, Any]]
    delta_link: str


@dataclass
class CalendarMirror:
    """The complete window as of `delta_link`."""

    start: datetime
    end: datetime
    delta_link: str
    occurrences: dict[str, Occurrence] = field(default_factory=dict)
    skipped: dict[str, SkippedItem] = field(default_factory=dict)  # rows of the window we cannot map


@dataclass
class _CalendarState:
    start: datetime | None = None
    end: datetime | None = None
    delta_link: str = ""
    masters: dict[str, str] = field(default_factory=dict)  # seriesMasterId -> iCalUId

    def dump(self) -> str:
        return json.dumps({"v": STATE_VERSION, "kind": "graph-calendar",
                           "start": utc_text(self.start) if self.start else None,
                           "end": utc_text(self.end) if self.end else None,
                           "delta": self.delta_link, "masters": self.masters}, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> _CalendarState:
        """An unreadable or foreign state (e.g. an EWS one after a backend switch) means: start over."""
        try:
            data = json.loads(text) if text else {}
            if not data or data.get("v") != STATE_VERSION or data.get("kind") != "graph-calendar":
                return cls()
            masters = data.get("masters") or {}
            return cls(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]),
                       str(data["delta"]), {str(k): str(v) for k, v in masters.items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass
class _FolderState:
    delta_link: str = ""
    item_ids: set[str] = field(default_factory=set)
    path: str = ""  # below Contacts; states written before paths were kept read as "" (read again once)


def _load_contact_state(text: str) -> dict[str, _FolderState]:
    try:
        data = json.loads(text) if text else {}
        if not data or data.get("v") != STATE_VERSION or data.get("kind") != "graph-contacts":
            return {}
        return {str(fid): _FolderState(str(f["delta"]), {str(i) for i in f["ids"]}, str(f.get("path", "")))
                for fid, f in data["folders"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def _dump_contact_state(folders: dict[str, _FolderState]) -> str:
    return json.dumps({"v": STATE_VERSION, "kind": "graph-contacts",
                       "folders": {fid: {"delta": f.delta_link, "ids": sorted(f.item_ids), "path": f.path}
                                   for fid, f in folders.items()}}, separators=(",", ":"), ensure_ascii=False)


class GraphSource:
    """`MailboxSource` over Microsoft Graph for one Entra ID tenant (app-only, client credentials)."""

    def __init__(self, exchange: ExchangeConfig, sync: SyncConfig | None = None, *,
                 clock: Callable[[], datetime] = _utc_now, sleep: Sleep = asyncio.sleep,
                 max_pages: int = 500, page_size: int = 100, max_retry_wait_seconds: float = 60.0,
                 keep_bodies: bool = False) -> None:
        self._sync = sync or SyncConfig()
        self._clock = clock
        self._max_pages = max_pages
        self._page_size = page_size
        verify: bool | str = exchange.ca_file or exchange.verify_tls
        if verify is False:
            log.warning("exchange.verify_tls = false: TLS certificates of Entra ID and Graph are NOT verified")
        credentials = AppCredentials(
            authority=exchange.authority, tenant_id=exchange.tenant_id, client_id=exchange.client_id,
            client_secret=exchange.client_secret or None, certificate_file=exchange.certificate_file,
            private_key_file=exchange.private_key_file, scope=scope_for(exchange.graph_endpoint),
            verify=verify, timeout_seconds=exchange.timeout_seconds)
        self.tokens = TokenProvider(credentials)
        limits = ClientLimits(max_connections=exchange.max_connections,
                              pool_size=max(10, exchange.max_connections * self._sync.concurrency),
                              max_retry_wait_seconds=max_retry_wait_seconds,
                              timeout_seconds=exchange.timeout_seconds)
        self.client = GraphClient(exchange.graph_endpoint, self.tokens, verify=verify, limits=limits, sleep=sleep)
        self._mirrors: dict[str, CalendarMirror] = {}
        self._masters: dict[str, dict[str, str]] = {}  # mailbox -> seriesMasterId -> iCalUId
        self._next_links: dict[tuple[str, Folder], tuple[str, ...]] = {}  # see probe_links
        self._phone = phone_builder(self._sync.default_region)
        # keep_bodies (write-back on): the delta rows' bodies, for the writer (kept_bodies.py)
        self.kept_bodies: KeptBodies | None = KeptBodies() if keep_bodies else None

    def probe_links(self, mailbox: str, folder: Folder) -> tuple[str, ...]:
        """The deltaLinks the folder's next incremental sync starts from (none before its first sync here);
        a change feed may ask them whether anything changed if it neither follows nor keeps the answer."""
        mirror = self._mirrors.get(mailbox) if folder is Folder.CALENDAR else None
        return (mirror.delta_link,) if mirror is not None else self._next_links.get((mailbox, folder), ())

    # ------------------------------------------------------------------ paging

    async def _round(self, mailbox: str, url: str, headers: dict[str, str]) -> DeltaRound:
        """Follow nextLinks to the deltaLink; a chain longer than max_pages (or a loop) is an error."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(self._max_pages):
            page = await self.client.get_json(mailbox, url, headers)
            value = page.get("value", [])
            if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
                raise SourceDataError(f"Graph: a delta page for {mailbox} has no usable value list")
            rows.extend(value)
            if "@odata.deltaLink" in page:
                return DeltaRound(rows, self.client.check_link(page["@odata.deltaLink"], "deltaLink"))
            if "@odata.nextLink" not in page:
                raise SourceDataError(f"Graph: a delta page for {mailbox} has neither nextLink nor deltaLink")
            url = self.client.check_link(page["@odata.nextLink"], "nextLink")
            if url in seen:
                raise SourceDataError(f"Graph: the nextLink chain for {mailbox} loops; round abandoned")
            seen.add(url)
        raise SourceDataError(f"Graph: more than {self._max_pages} pages in one delta round for {mailbox}; "
                              "round abandoned")

    def _calendar_headers(self) -> dict[str, str]:
        return {"Prefer": f'outlook.timezone="UTC", odata.maxpagesize={self._page_size}'}

    def _calendar_start_url(self, mailbox: str, start: datetime, end: datetime) -> str:
        query = urlencode({"startDateTime": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "endDateTime": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
        return self.client.url(f"{user_path(mailbox)}/calendarView/delta?{query}")

    # ------------------------------------------------------------------ calendar

    async def _calendar_round(self, mailbox: str, url: str) -> DeltaRound:
        return await self._round(mailbox, url, self._calendar_headers())

    async def _series_uids(self, mailbox: str, rows: Iterable[dict[str, Any]], known: dict[str, str]) -> None:
        """Fill `known` with the iCalUId of every series master the rows refer to."""
        wanted = {r["seriesMasterId"] for r in rows
                  if not is_removed(r) and isinstance(r.get("seriesMasterId"), str) and r["seriesMasterId"]
                  and r.get("type") in ("occurrence", "exception")} - set(known)

        async def fetch(master_id: str) -> None:
            url = self.client.url(f"{user_path(mailbox)}/events/{quote(master_id, safe='')}?$select=iCalUId")
            body = await self.client.get_json(mailbox, url)
            uid = body.get("iCalUId")
            if uid is not None and not isinstance(uid, str):
                raise SourceDataError(f"Graph: series master {master_id[:40]} of {mailbox} has a non-text iCalUId")
            known[master_id] = uid or ""  # none (a copied series): keyed by the master's id instead

        await asyncio.gather(*(fetch(m) for m in sorted(wanted)))

    def _apply(self, mailbox: str, occurrences: dict[str, Occurrence], rows: list[dict[str, Any]],
               masters: dict[str, str], skipped: dict[str, SkippedItem] | None = None) -> tuple[list[str], list[str]]:
        """Apply delta rows in order; returns (changed ids, removed ids) by each id's final state. A row we
        cannot map goes to `skipped`; what `occurrences` held for its id stays (a skip cancels nothing)."""
        final: dict[str, bool] = {}
        unmapped: dict[str, SkippedItem] = {} if skipped is None else skipped
        for row in rows:
            if is_removed(row):
                gone = removed_row(row)
                occurrences.pop(gone.item_id, None)
                unmapped.pop(gone.item_id, None)
                final[gone.item_id] = False
                continue
            if row.get("type") == "seriesMaster":
                continue  # calendarView delta sends instances; a master here carries nothing to store
            series = row.get("seriesMasterId")
            try:
                occ = event_to_occurrence(row, masters.get(series) if isinstance(series, str) else None)
            except SourceDataError as exc:
                row_id = row.get("id")
                item_id = row_id if isinstance(row_id, str) and len(row_id) <= 1024 else ""
                unmapped[item_id] = SkippedItem("", item_id, str(exc)[:200])
                final[item_id] = True
                continue
            occurrences[occ.item_id] = occ
            body = event_body(occ.item_id, row) if self.kept_bodies is not None else None
            if self.kept_bodies is not None and body is not None:
                self.kept_bodies.keep(mailbox, [(occ, body)])
            unmapped.pop(occ.item_id, None)
            final[occ.item_id] = True
        return [i for i, alive in final.items() if alive], [i for i, alive in final.items() if not alive]

    async def _full_mirror(self, mailbox: str, start: datetime, end: datetime) -> CalendarMirror:
        delta = await self._calendar_round(mailbox, self._calendar_start_url(mailbox, start, end))
        masters = self._masters.setdefault(mailbox, {})
        await self._series_uids(mailbox, delta.rows, masters)
        mirror = CalendarMirror(start, end, delta.delta_link)
        self._apply(mailbox, mirror.occurrences, delta.rows, masters, mirror.skipped)
        return mirror

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges:
        if self.kept_bodies is not None:
            self.kept_bodies.forget(mailbox)  # bodies from an earlier pass are never used
        state = _CalendarState.load(sync_state)
        masters = self._masters.setdefault(mailbox, {})
        masters.update({k: v for k, v in state.masters.items() if k not in masters})
        mirror = self._mirrors.get(mailbox)
        try:
            if mirror is not None:
                return await self._advance_mirror(mailbox, mirror)
            if state.delta_link and state.start and state.end:
                # After a restart: detect changes from the persisted link; the engine then asks for the
                # window, which is fetched in full once and mirrored from then on.
                self.client.check_link(state.delta_link, "stored deltaLink")
                delta = await self._calendar_round(mailbox, state.delta_link)
                await self._series_uids(mailbox, delta.rows, masters)
                changed, removed = self._apply(mailbox, {}, delta.rows, masters)
                new = _CalendarState(state.start, state.end, delta.delta_link, dict(masters))
                self._next_links[(mailbox, Folder.CALENDAR)] = (delta.delta_link,)
                return CalendarChanges(tuple(changed), tuple(removed), new.dump())
        except DeltaGoneError as exc:
            log.info("%s; starting a full calendar round", exc)
            self._mirrors.pop(mailbox, None)
        start, end = (mirror.start, mirror.end) if mirror else (
            (state.start, state.end) if state.start and state.end
            else sync_window(self._clock(), self._sync.days_back, self._sync.days_ahead))
        fresh = await self._full_mirror(mailbox, start, end)
        previous = set(mirror.occurrences) if mirror else set()
        self._mirrors[mailbox] = fresh
        return CalendarChanges(tuple(fresh.occurrences), tuple(sorted(previous - set(fresh.occurrences))),
                               self._mirror_state(mailbox, fresh))

    async def _advance_mirror(self, mailbox: str, mirror: CalendarMirror) -> CalendarChanges:
        """One incremental round applied to a copy of the mirror (the mirror changes only on success)."""
        delta = await self._calendar_round(mailbox, mirror.delta_link)
        masters = self._masters.setdefault(mailbox, {})
        await self._series_uids(mailbox, delta.rows, masters)
        occurrences, skipped = dict(mirror.occurrences), dict(mirror.skipped)
        changed, removed = self._apply(mailbox, occurrences, delta.rows, masters, skipped)
        advanced = CalendarMirror(mirror.start, mirror.end, delta.delta_link, occurrences, skipped)
        self._mirrors[mailbox] = advanced
        return CalendarChanges(tuple(changed), tuple(removed), self._mirror_state(mailbox, advanced))

    def _mirror_state(self, mailbox: str, mirror: CalendarMirror) -> str:
        masters = self._masters.get(mailbox, {})
        in_use = {o.series_item_id for o in mirror.occurrences.values() if o.series_item_id}
        return _CalendarState(mirror.start, mirror.end, mirror.delta_link,
                              {k: v for k, v in masters.items() if k in in_use}).dump()

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        mirror = self._mirrors.get(mailbox)
        if mirror is not None and (mirror.start, mirror.end) == (start, end):
            try:
                await self._advance_mirror(mailbox, mirror)
            except DeltaGoneError as exc:
                log.info("%s; refetching the calendar window", exc)
                self._mirrors.pop(mailbox, None)
                mirror = None
        if mirror is None or (mirror.start, mirror.end) != (start, end):
            try:
                self._mirrors[mailbox] = await self._full_mirror(mailbox, start, end)
            except DeltaGoneError as exc:  # a fresh round cannot be gone; Graph is confused
                raise SourceError(str(exc)) from None
        current = self._mirrors[mailbox]
        ordered = sorted(current.occurrences.values(), key=lambda o: (o.start, o.item_id))
        return CalendarWindow(start, end, tuple(ordered), tuple(current.skipped.values()))

    # ------------------------------------------------------------------ contacts

    async def _contact_folders(self, mailbox: str) -> list[tuple[str, str]]:
        """(id, path) of every folder below the default Contacts folder, depth first (bounded)."""
        found: list[tuple[str, str]] = []
        known: set[str] = set()
        pending = [(self.client.url(f"{user_path(mailbox)}/contactFolders?$select=id,displayName&$top=100"), "")]
        while pending:
            url, parent_path = pending.pop()
            for _ in range(self._max_pages):
                page = await self.client.get_json(mailbox, url)
                value = page.get("value", [])
                if not isinstance(value, list):
                    raise SourceDataError(f"Graph: contact folder list of {mailbox} is not a list")
                for folder in value:
                    fid = folder.get("id") if isinstance(folder, dict) else None
                    if not isinstance(fid, str) or not fid or fid in known:
                        continue
                    name = folder.get("displayName")
                    name = name if isinstance(name, str) else ""
                    if is_system_folder(name):
                        continue
                    known.add(fid)
                    path = folder_path(parent_path, name)
                    found.append((fid, path))
                    if len(found) > MAX_CONTACT_FOLDERS:
                        raise SourceDataError(f"Graph: {mailbox} has more than {MAX_CONTACT_FOLDERS} "
                                              "contact folders")
                    pending.append((self.client.url(
                        f"{user_path(mailbox)}/contactFolders/{quote(fid, safe='')}/childFolders"
                        "?$select=id,displayName&$top=100"), path))
                if "@odata.nextLink" not in page:
                    break
                url = self.client.check_link(page["@odata.nextLink"], "nextLink")
        return found

    def _contacts_start_url(self, mailbox: str, folder_id: str) -> str:
        if not folder_id:
            return self.client.url(f"{user_path(mailbox)}/contacts/delta")
        return self.client.url(f"{user_path(mailbox)}/contactFolders/{quote(folder_id, safe='')}/contacts/delta")

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        previous = _load_contact_state(sync_state)
        folders = [("", ""), *await self._contact_folders(mailbox)]  # "" = the default Contacts folder
        headers = {"Prefer": f"odata.maxpagesize={self._page_size}"}
        upserts: dict[str, Contact] = {}
        deleted: set[str] = set()
        skipped: dict[str, SkippedItem] = {}
        new_state: dict[str, _FolderState] = {}
        for folder_id, path in folders:
            before = previous.get(folder_id, _FolderState())
            ids = set(before.item_ids)
            full = not before.delta_link or before.path != path  # renamed: its contacts need the new path
            try:
                url = (self.client.check_link(before.delta_link, "stored deltaLink") if not full
                       else self._contacts_start_url(mailbox, folder_id))
                delta = await self._round(mailbox, url, headers)
            except DeltaGoneError as exc:
                log.info("%s; resyncing contact folder in full", exc)
                full = True
                delta = await self._round(mailbox, self._contacts_start_url(mailbox, folder_id), headers)
            if full:
                seen = {r.get("id") for r in delta.rows if not is_removed(r)}
                deleted.update(i for i in ids if i not in seen)
                ids = set()
            for row in delta.rows:
                if is_removed(row):
                    gone = removed_row(row).item_id
                    ids.discard(gone)
                    upserts.pop(gone, None)
                    skipped.pop(gone, None)
                    deleted.add(gone)
                    continue
                try:
                    contact = contact_to_model(row, self._phone, path)
                except SourceDataError as exc:  # this row only: the folder's other contacts go on
                    row_id = row.get("id")
                    item_id = row_id if isinstance(row_id, str) and len(row_id) <= 1024 else ""
                    skipped[item_id] = SkippedItem(path, item_id, str(exc)[:200])
                    ids.add(item_id)
                    upserts.pop(item_id, None)
                    continue
                ids.add(contact.item_id)
                upserts[contact.item_id] = contact
                skipped.pop(contact.item_id, None)
                deleted.discard(contact.item_id)
            ids.discard("")
            new_state[folder_id] = _FolderState(delta.delta_link, ids, path)
        for folder_id, gone_folder in previous.items():
            if folder_id not in new_state:  # the folder was deleted: so were its contacts
                deleted.update(gone_folder.item_ids)
        deleted.difference_update(upserts)
        self._next_links[(mailbox, Folder.CONTACTS)] = tuple(f.delta_link for f in new_state.values())
        return ContactChanges(tuple(upserts.values()), tuple(sorted(deleted)), _dump_contact_state(new_state),
                              skipped=tuple(skipped.values()))

    # ------------------------------------------------------------------ the rest

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        """Graph reports SMTP addresses; an X.500 address cannot be looked up app-only without
        Directory permissions this app does not ask for, so it stays unresolved (and unmatched)."""
        return None if not address.strip() or is_internal_address(address) else address

    async def expand_group(self, mailbox: str, address: str, *, max_members: int = 200) -> GroupMembers | None:
        return await find_group(self.client, mailbox, address, max_members, self._max_pages)

    async def close(self) -> None:
        self.client.close()

    async def check_credentials(self) -> None:
        """Get a token now (SourceAuthError if Entra ID refuses), to report a bad secret at start-up."""
        await asyncio.to_thread(self.tokens.token)


def phone_builder(region: str) -> PhoneBuilder:
    """sync.phones' one normalisation (shared with EWS, LDAP, caller ID)."""
    def build(kind: PhoneKind, raw: str) -> PhoneNumber | None:
        return normalise_phone(kind, raw, region)
    return build
