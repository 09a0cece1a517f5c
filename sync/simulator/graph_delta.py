"""Graph delta queries over the simulated mailboxes: calendarView/delta and contacts/delta rounds.

Delta state is kept server-side per token, as Graph does: a calendar token remembers the window and the
occurrence ids and change keys it has delivered, so the next round reports exactly what changed and
`@removed` for what left the window; a contacts token is a position in the folder's change log. A round's
rows are paged out with fresh `$skiptoken`s, the last page ends with a `$deltatoken`. Thread-safe.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

from pbxsync.sync.simulator.graph_json import (
    HttpError,
    contact_json,
    error_body,
    event_json,
    odd_item_json,
    removed_json,
)
from pbxsync.sync.simulator.ids import b64url
from pbxsync.sync.simulator.organisation import NoSuchFolder, Organisation
from pbxsync.sync.simulator.records import ContactRecord, OddItemRecord, contact_folder_key

CONTACTS_FOLDER_PREFIX = "AAMkCF"


def contacts_folder_id(mailbox: str) -> str:
    return CONTACTS_FOLDER_PREFIX + b64url(hashlib.sha256(f"{mailbox}|contacts".encode()).digest()[:24])


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sync_state_gone() -> HttpError:
    return HttpError(410, error_body("SyncStateNotFound", "The sync state generation is not found."))


@dataclass
class _CalendarDelta:
    mailbox: str
    start: datetime
    end: datetime
    seq: int
    delivered: dict[str, str]  # occurrence id -> change key, as the client now knows it


@dataclass
class _ContactDelta:
    mailbox: str
    folder: str  # the change log (records.contact_folder_key)
    seq: int


@dataclass
class _PendingRound:
    """Rows of a round still to be paged out, and the token the last page ends with."""

    rows: list[dict[str, Any]]
    offset: int
    delta_token: str
    base: str  # the path the links repeat


class DeltaRounds:
    """Every delta and skip token handed out, and the rounds they continue."""

    def __init__(self, org: Organisation, graph_endpoint: str) -> None:
        self.org = org
        self.graph_endpoint = graph_endpoint
        self.endless_next_links = False  # a test control: every page links to another (a looping server)
        self._lock = threading.Lock()
        self._calendar: dict[str, _CalendarDelta] = {}
        self._contacts: dict[str, _ContactDelta] = {}
        self._pending: dict[str, _PendingRound] = {}

    def forget(self) -> None:
        """Every delta/skip token is gone: the next request with one gets 410 Gone."""
        with self._lock:
            self._calendar.clear()
            self._contacts.clear()
            self._pending.clear()

    def _new_id(self) -> str:
        return b64url(secrets.token_bytes(18))

    def _page(self, round_id: str, page_size: int) -> dict[str, Any]:
        with self._lock:
            pending = self._pending.get(round_id)
            if pending is None:
                raise _sync_state_gone()
            rows = pending.rows[pending.offset:pending.offset + page_size]
            pending.offset += len(rows)
            done = pending.offset >= len(pending.rows)
            del self._pending[round_id]  # each page gets a fresh skiptoken, as Graph does
            round_id = self._new_id()
            if not done:
                self._pending[round_id] = pending
        body: dict[str, Any] = {"@odata.context": f"{self.graph_endpoint}/$metadata#Collection(event)",
                                "value": rows}
        if self.endless_next_links:
            with self._lock:
                next_id = self._new_id()
                self._pending[next_id] = _PendingRound([], 0, pending.delta_token, pending.base)
            body["@odata.nextLink"] = f"{self.graph_endpoint}{pending.base}?{urlencode({'$skiptoken': next_id})}"
        elif done:
            body["@odata.deltaLink"] = (f"{self.graph_endpoint}{pending.base}?"
                                        f"{urlencode({'$deltatoken': pending.delta_token})}")
        else:
            body["@odata.nextLink"] = f"{self.graph_endpoint}{pending.base}?{urlencode({'$skiptoken': round_id})}"
        return body

    def _start_round(self, rows: list[dict[str, Any]], delta_token: str, base: str, page_size: int) -> dict[str, Any]:
        round_id = self._new_id()
        with self._lock:
            self._pending[round_id] = _PendingRound(rows, 0, delta_token, base)
        return self._page(round_id, page_size)

    def calendar(self, mailbox: str, query: dict[str, str], zone: tzinfo, zone_name: str,
                 page_size: int) -> dict[str, Any]:
        base = f"/users/{mailbox}/calendarView/delta"
        if "$skiptoken" in query:
            return self._page(query["$skiptoken"], page_size)
        if "$deltatoken" in query:
            with self._lock:
                previous = self._calendar.get(query["$deltatoken"])
            if previous is None or previous.mailbox != mailbox:
                raise _sync_state_gone()
            start, end, delivered = previous.start, previous.end, previous.delivered
            changed = self.org.changes_since(mailbox, "calendar", previous.seq, 1)
            if not changed.changes:  # nothing happened in this folder: an empty round, cheaply
                token = self._new_id()
                with self._lock:
                    self._calendar[token] = _CalendarDelta(mailbox, start, end, changed.seq, delivered)
                return self._start_round([], token, base, page_size)
        else:
            try:
                start = _parse_instant(query["startDateTime"])
                end = _parse_instant(query["endDateTime"])
            except (KeyError, ValueError):
                raise HttpError(400, error_body("ErrorInvalidParameter", "The parameter 'startDateTime' or "
                                                "'endDateTime' is missing or invalid.")) from None
            delivered = {}
        seq = self.org.changes_since(mailbox, "calendar", 0, 1 << 30).seq  # the log position, before the view
        view = self.org.calendar_view(mailbox, start, end)
        current = {o.item_id: o for o in view}
        rows: list[dict[str, Any]] = [event_json(self.org, mailbox, o, zone, zone_name) for o in view
                                      if delivered.get(o.item_id) != o.change_key]
        rows += [removed_json("#microsoft.graph.event", i) for i in delivered if i not in current]
        token = self._new_id()
        with self._lock:
            self._calendar[token] = _CalendarDelta(mailbox, start, end, seq,
                                                   {i: o.change_key for i, o in current.items()})
        return self._start_round(rows, token, base, page_size)

    def contacts(self, mailbox: str, folder_id: str, query: dict[str, str], page_size: int) -> dict[str, Any]:
        """A delta round of one contacts folder: "" or the default folder's Graph id, or a sub-folder's id."""
        default_folder = contacts_folder_id(mailbox)
        sub = "" if folder_id in ("", default_folder) else folder_id
        key = contact_folder_key(sub)
        not_found = HttpError(404, error_body("ErrorItemNotFound", "The specified object was not found in the store."))
        if sub and not any(f.folder_id == sub and f.is_phonebook for f in self.org.contact_folders(mailbox)):
            raise not_found
        base = (f"/users/{mailbox}/contactFolders/{folder_id}/contacts/delta" if folder_id
                else f"/users/{mailbox}/contacts/delta")
        if "$skiptoken" in query:
            return self._page(query["$skiptoken"], page_size)
        seq = 0
        if "$deltatoken" in query:
            with self._lock:
                previous = self._contacts.get(query["$deltatoken"])
            if previous is None or previous.mailbox != mailbox or previous.folder != key:
                raise _sync_state_gone()
            seq = previous.seq
        rows: list[dict[str, Any]] = []
        while True:
            try:
                page = self.org.changes_since(mailbox, key, seq, 1000)
            except NoSuchFolder:
                raise not_found from None
            for change in page.changes:
                if change.kind == "delete":
                    if seq:  # a first round only lists what exists
                        rows.append(removed_json("#microsoft.graph.contact", change.item_id))
                elif isinstance(change.record, ContactRecord):
                    rows.append(contact_json(change.record, sub or default_folder))
                elif isinstance(change.record, OddItemRecord) and (odd := odd_item_json(change.record, sub)):
                    rows.append(odd)
            seq = page.seq
            if page.includes_last:
                break
        token = self._new_id()
        with self._lock:
            self._contacts[token] = _ContactDelta(mailbox, key, seq)
        return self._start_round(rows, token, base, page_size)
