"""Writes into simulated calendars (EWS UpdateItem, Graph PATCH): who may write, and what was asked.

Both protocols change a meeting's body through `write_body`, which is the organisation's compare-and-set
(`Organisation.update_item_if`): a stale change key fails with `StaleChangeKey` and changes nothing. A
stored write is a normal change: the item gets a new change key and shows up in SyncFolderItems, Graph
delta and the notifications like any other edit. With "send to all" (EWS SendToAllAndSaveCopy, Graph's
organizer update) the attendees' copies receive the new body too, as Exchange's meeting update does.

`revoke(mailbox)` takes the write permission away from one mailbox (reads keep working): EWS then
answers ErrorAccessDenied, Graph 403, as when an admin narrows the app's access.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pbxsync.sync.simulator.organisation import Organisation
    from pbxsync.sync.simulator.records import MeetingRecord


class WriteDenied(Exception):
    """The mailbox's write permission was revoked."""


@dataclass(frozen=True)
class WriteRequest:
    """One accepted write, as the client asked for it."""

    protocol: str  # "ews" | "graph"
    mailbox: str
    item_id: str
    conflict_resolution: str  # EWS ConflictResolution; Graph: "If-Match" or "" (none sent)
    send: str  # EWS SendMeetingInvitationsOrCancellations; Graph: "SendToAllAndSaveCopy" (organizer update)
    body_html: bool


class CalendarWrites:
    """The write side's state: revoked mailboxes and the log of accepted writes (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: set[str] = set()
        self._log: list[WriteRequest] = []

    def revoke(self, mailbox: str) -> None:
        with self._lock:
            self._revoked.add(mailbox.lower())

    def restore(self, mailbox: str) -> None:
        with self._lock:
            self._revoked.discard(mailbox.lower())

    def may_write(self, mailbox: str) -> bool:
        with self._lock:
            return mailbox.lower() not in self._revoked

    def record(self, request: WriteRequest) -> None:
        with self._lock:
            self._log.append(request)

    def log(self, mailbox: str | None = None) -> list[WriteRequest]:
        with self._lock:
            return [w for w in self._log if mailbox is None or w.mailbox == mailbox.lower()]


def write_body(org: Organisation, request: WriteRequest, change_key: str | None, body: str) -> MeetingRecord:
    """Set the body of one meeting if `change_key` is still current (None: unconditionally). Raises
    WriteDenied, organisation.StaleChangeKey, organisation.NoSuchItem / NoSuchMailbox."""
    if not org.writes.may_write(request.mailbox):
        raise WriteDenied(request.mailbox)
    stored = org.update_item_if(request.mailbox, request.item_id, change_key, body=body, body_html=request.body_html)
    org.writes.record(request)
    if request.send.startswith("SendToAll"):
        others = [box for box, _ in org.copies(stored.uid) if box != request.mailbox.lower()]
        if others:
            org.update_meeting(stored.uid, others, body=body, body_html=request.body_html)
    return stored
