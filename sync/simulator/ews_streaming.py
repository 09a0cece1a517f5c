"""EWS streaming notifications in the simulator: Subscribe, GetStreamingEvents, Unsubscribe.

Wire format per Microsoft's published examples ("Subscribe operation", "GetStreamingEvents operation",
"Stream notifications about mailbox events by using EWS", "Maintain affinity between a group of
subscriptions and the Mailbox server", "Handling notification-related errors"):

- Subscribe with a StreamingSubscriptionRequest on folders of ONE mailbox (the caller's, or the
  impersonated one: calendar, Contacts, sub-folders of Contacts) answers a SubscriptionId. A subscription
  hears only its own folders: an item event names the folder it happened in (ParentFolderId); creating,
  changing or deleting a sub-folder of Contacts is a folder event (FolderId, ParentFolderId) its parent's
  subscriptions hear. The subscription belongs to the account that authenticated
  (a service account impersonating many users owns all of theirs). More than `max_subscriptions` live
  subscriptions on one mailbox: ErrorExceededSubscriptionCount (EWSMaxSubscriptions). A request with
  `X-PreferServerAffinity: true` gets an `X-BackEndOverrideCookie` cookie; every request's X-AnchorMailbox,
  affinity header and cookie are recorded in `requests` for tests.
- GetStreamingEvents (1-200 subscription ids, ConnectionTimeout 1-30 minutes) holds ONE chunked HTTP
  response open and writes one SOAP envelope per chunk: at once a first message, then notifications as
  changes happen (CreatedEvent, ModifiedEvent, and for deletions MovedEvent to Deleted Items as Outlook's
  Delete does, or DeletedEvent with `deletes="deleted"`, each naming the item and its ParentFolderId),
  keep-alives (ConnectionStatus OK without notifications) every `keepalive_seconds`, and at the timeout a
  last message with ConnectionStatus Closed. Unknown, foreign or expired ids: an error message
  (ErrorSubscriptionNotFound / ErrorInvalidSubscription) with ErrorSubscriptionIds and ConnectionStatus
  Closed. More open streams per account than `hanging_connection_limit`: ErrorExceededConnectionCount.
- A subscription expires `lifetime_minutes` after its last connection ended (Exchange: ~30).
- `drop(mailbox=None)` is the control command that makes subscriptions vanish (an Exchange restart, a
  mailbox move): open streams carrying them get the error message and end; later use gets the error.
  Over HTTP: POST /_simulator/streaming/drop[?mailbox=ADDRESS].

`minute_seconds` is how long a protocol minute lasts here (60 by default; tests shorten it), for the
ConnectionTimeout and the lifetime alike.

Over 400 lines on purpose: the three operations share the subscriptions, their queues and the open streams
under one lock; the XML of a response is in ews_operations and ews_xml.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Literal

from pbxsync.sync.simulator.ews_operations import (
    EwsRequest,
    MessageError,
    error_message,
    folder_id,
    success_message,
)
from pbxsync.sync.simulator.ews_xml import MESSAGES_NS, TYPES_NS, esc, ews_time
from pbxsync.sync.simulator.organisation import ChangeNotice

if TYPE_CHECKING:
    from pbxsync.sync.simulator.ews_server import EwsSimulator

COOKIE = "X-BackEndOverrideCookie"
EVENT_TYPES = ("CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "NewMailEvent",
               "FreeBusyChangedEvent")
MAX_IDS = 200
MAX_EVENTS_PER_NOTIFICATION = 50  # "the first 50 events from the queue are ... encoded into a notification"
_M, _T = f"{{{MESSAGES_NS}}}", f"{{{TYPES_NS}}}"
_CLIENT_GONE = (OSError,)  # BrokenPipe, ConnectionReset...: the client hung up


@dataclass(frozen=True)
class AffinityRecord:
    """What one streaming-related request carried (for tests of grouping and affinity)."""

    operation: str
    principal: str  # the mailbox acted for (impersonated, else the caller)
    anchor: str  # X-AnchorMailbox
    prefer_affinity: bool
    cookie: str  # the X-BackEndOverrideCookie cookie sent back, "" if none
    subscription_ids: tuple[str, ...] = ()


@dataclass
class _Subscription:
    id: str
    owner: str
    mailbox: str
    folders: frozenset[str]
    event_types: frozenset[str]
    last_seen: float
    queue: list[str] = field(default_factory=list)
    streams: int = 0  # open connections carrying it
    all_folders: bool = False  # SubscribeToAllFolders


class _Failure(Exception):
    def __init__(self, code: str, message: str, bad_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.bad_ids = code, message, bad_ids


class StreamingHub:
    """The simulator's subscriptions and event queues. Thread-safe (one condition guards everything).

    Lock order: the organisation's lock, then the hub's (the change listener runs under the first). The
    hub never calls into the organisation while it holds its own lock."""

    def __init__(self, sim: EwsSimulator, *, minute_seconds: float = 60.0, keepalive_seconds: float = 30.0,
                 lifetime_minutes: float = 30.0, max_subscriptions: int = 5000, hanging_connection_limit: int = 10,
                 deletes: Literal["moved", "deleted"] = "moved", clock: Callable[[], float] = time.monotonic) -> None:
        self.sim = sim
        self.minute_seconds = minute_seconds
        self.keepalive_seconds = keepalive_seconds
        self.lifetime_minutes = lifetime_minutes
        self.max_subscriptions = max_subscriptions
        self.hanging_connection_limit = hanging_connection_limit
        self.deletes = deletes
        self.clock = clock
        self.requests: list[AffinityRecord] = []
        self.events_sent = 0
        self._cond = threading.Condition()
        self._subs: dict[str, _Subscription] = {}
        self._dropped: set[str] = set()
        self._streams: dict[str, int] = {}  # account -> open GetStreamingEvents
        self._closing = False
        self._seq = itertools.count(1)
        self._remove_listener = sim.org.add_listener(self._on_change)

    # ---- control (tests, `pbxsync simulate`)

    def drop(self, mailbox: str | None = None) -> int:
        """Subscriptions (all, or one mailbox's) vanish as after an Exchange restart. Returns how many."""
        with self._cond:
            gone = [s for s in self._subs.values() if mailbox is None or s.mailbox == mailbox.lower()]
            for sub in gone:
                del self._subs[sub.id]
                self._dropped.add(sub.id)
            self._cond.notify_all()
            return len(gone)

    def subscriptions(self, mailbox: str | None = None) -> list[str]:
        with self._cond:
            return [s.id for s in self._subs.values() if mailbox is None or s.mailbox == mailbox.lower()]

    def open_streams(self) -> int:
        with self._cond:
            return sum(self._streams.values())

    def close(self) -> None:
        """The server stops: open streams say Closed and end."""
        self._remove_listener()
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    # ---- the organisation's change listener (runs under the organisation's lock)

    def _on_change(self, notice: ChangeNotice) -> None:
        stamp = ews_time(datetime.now(UTC))
        where = notice.folder_key or notice.folder  # "calendar", "contacts" or a sub-folder "contacts:<id>"
        parent = folder_id(notice.mailbox, where)
        item = f'<t:ItemId Id="{esc(notice.item_id)}"/>'
        heard_in = {where}  # the folders whose subscriptions hear it
        if notice.what == "folder":  # a sub-folder of Contacts: its parent's subscriptions, and its own
            kind = {"create": "CreatedEvent", "update": "ModifiedEvent", "delete": "DeletedEvent"}[notice.kind]
            xml = (f'<t:FolderId Id="{folder_id(notice.mailbox, notice.item_id)}"/>'
                   f'<t:ParentFolderId Id="{parent}"/>')
            heard_in.add(notice.item_id)
        elif notice.kind == "create":
            kind, xml = "CreatedEvent", f'{item}<t:ParentFolderId Id="{parent}"/>'
        elif notice.kind == "update":
            kind, xml = "ModifiedEvent", f'{item}<t:ParentFolderId Id="{parent}"/>'
        elif self.deletes == "deleted":
            kind, xml = "DeletedEvent", f'{item}<t:ParentFolderId Id="{parent}"/>'
        else:  # Outlook's Delete moves the item to Deleted Items, under a new id
            moved = esc(f"{notice.item_id}-deleted{next(self._seq)}")
            kind = "MovedEvent"
            xml = (f'<t:ItemId Id="{moved}"/><t:ParentFolderId Id="{folder_id(notice.mailbox, "deleteditems")}"/>'
                   f'<t:OldItemId Id="{esc(notice.item_id)}"/><t:OldParentFolderId Id="{parent}"/>')
        event = f"<t:{kind}><t:TimeStamp>{stamp}</t:TimeStamp>{xml}</t:{kind}>"
        with self._cond:
            for sub in self._subs.values():
                if (sub.mailbox == notice.mailbox and (sub.all_folders or heard_in & sub.folders)
                        and kind in sub.event_types):
                    sub.queue.append(event)
            self._cond.notify_all()

    # ---- requests

    def handle(self, handler: BaseHTTPRequestHandler, request: EwsRequest) -> None:
        """Answer one Subscribe / GetStreamingEvents / Unsubscribe (the server's dispatch calls this)."""
        cookie = _cookie(handler.headers.get("Cookie", ""))
        prefer = handler.headers.get("X-PreferServerAffinity", "").lower() == "true"
        anchor = handler.headers.get("X-AnchorMailbox", "").lower()
        ids = tuple(_text(e) for e in request.payload.iter(f"{_T}SubscriptionId"))
        ids += tuple(_text(e) for e in request.payload.findall(f"{_M}SubscriptionId"))
        with self._cond:
            self.requests.append(AffinityRecord(request.operation, request.principal, anchor, prefer, cookie, ids))
        extra = {}
        if prefer and not cookie:
            extra["Set-Cookie"] = f"{COOKIE}={_affinity_cookie(anchor or request.principal)}; path=/; HttpOnly"
        if request.operation == "GetStreamingEvents":
            self._stream(handler, request, ids, extra)
            return
        op = request.operation
        try:
            inner = self._subscribe(request) if op == "Subscribe" else self._unsubscribe(request, ids)
        except _Failure as exc:
            inner = _error(op, exc)
        _send(handler, 200, self.sim.ews_body(request, inner).encode(), extra)

    def _subscribe(self, request: EwsRequest) -> str:
        spec = request.payload.find(f"{_M}StreamingSubscriptionRequest")
        if spec is None:
            raise _Failure("ErrorInvalidSubscriptionRequest", "Only streaming subscriptions are simulated.")
        types = frozenset(_text(e) for e in spec.iter(f"{_T}EventType"))
        if not types or not types <= set(EVENT_TYPES):
            raise _Failure("ErrorInvalidRequest", "Bad EventTypes.")
        folders: set[str] = set()
        mailboxes: set[str] = set()
        every = spec.get("SubscribeToAllFolders", "").lower() == "true"
        try:
            if every:
                mailboxes.add(request.check_mailbox(""))
            for ref in list(spec.find(f"{_T}FolderIds") or []):
                holder = ET.Element("x")
                holder.append(ref)
                mailbox, name = request.folder_ref(holder)
                subs = {f"contacts:{f.folder_id}" for f in self.sim.org.contact_folders(mailbox)}
                if name not in ("calendar", "contacts") and name not in subs:
                    raise _Failure("ErrorFolderNotFound", "The specified folder could not be found.")
                mailboxes.add(mailbox)
                folders.add(name)
        except MessageError as exc:
            raise _Failure(exc.code, exc.message) from None
        if len(mailboxes) != 1 or not (folders or every):
            raise _Failure("ErrorInvalidSubscriptionRequest", "A subscription covers folders of one mailbox.")
        (mailbox,) = mailboxes
        with self._cond:
            if sum(1 for s in self._subs.values() if s.mailbox == mailbox) >= self.max_subscriptions:
                raise _Failure("ErrorExceededSubscriptionCount",
                               "You have exceeded the available subscriptions for your account. Remove "
                               "unnecessary subscriptions and try your request again.")
            sub = _Subscription(_new_id(), request.actor.email, mailbox, frozenset(folders), types, self.clock(),
                                all_folders=every)
            self._subs[sub.id] = sub
        return success_message("Subscribe", f"<m:SubscriptionId>{sub.id}</m:SubscriptionId>")

    def _unsubscribe(self, request: EwsRequest, ids: tuple[str, ...]) -> str:
        with self._cond:
            sub = self._subs.get(ids[0]) if ids else None
            if sub is None or sub.owner != request.actor.email:
                raise _Failure("ErrorSubscriptionNotFound", "The specified subscription was not found.")
            del self._subs[sub.id]
            self._cond.notify_all()
        return success_message("Unsubscribe", "")

    def _open(self, request: EwsRequest, ids: tuple[str, ...], minutes: int) -> list[_Subscription]:
        """Checks a GetStreamingEvents request and registers the stream; raises _Failure."""
        if not ids or len(ids) > MAX_IDS:
            raise _Failure("ErrorInvalidRequest", f"Give 1-{MAX_IDS} subscription ids.")
        if not 1 <= minutes <= 30:
            raise _Failure("ErrorInvalidRequest", "ConnectionTimeout must be 1-30 minutes.")
        account = request.principal
        with self._cond:
            now = self.clock()
            for sub in [s for s in self._subs.values() if s.streams == 0 and self._expired(s, now)]:
                del self._subs[sub.id]
                self._dropped.add(sub.id)
            foreign = tuple(i for i in ids if i in self._subs and self._subs[i].owner != request.actor.email)
            if foreign:
                raise _Failure("ErrorInvalidSubscription", "The subscription belongs to another account.", foreign)
            missing = tuple(i for i in ids if i not in self._subs)
            if missing:
                raise _Failure("ErrorSubscriptionNotFound", "The specified subscription was not found.", missing)
            if self._streams.get(account, 0) >= self.hanging_connection_limit:
                raise _Failure("ErrorExceededConnectionCount", "You have exceeded the available concurrent "
                               "connections for your account. Try again once your other requests have completed.")
            self._streams[account] = self._streams.get(account, 0) + 1
            subs = [self._subs[i] for i in ids]
            for sub in subs:
                sub.streams += 1
            return subs

    def _expired(self, sub: _Subscription, now: float) -> bool:
        return now - sub.last_seen > self.lifetime_minutes * self.minute_seconds

    def _stream(self, handler: BaseHTTPRequestHandler, request: EwsRequest, ids: tuple[str, ...],
                extra: dict[str, str]) -> None:
        op = "GetStreamingEvents"
        try:
            minutes = int(_text(request.payload.find(f"{_M}ConnectionTimeout")) or "0")
        except ValueError:
            minutes = 0
        try:
            subs = self._open(request, ids, minutes)
        except _Failure as exc:
            inner = _error(op, exc, closed=True)
            _send(handler, 200, self.sim.ews_body(request, inner).encode(), extra)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/xml; charset=utf-8")
        handler.send_header("Transfer-Encoding", "chunked")
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        mine = {s.id for s in subs}
        deadline = self.clock() + minutes * self.minute_seconds
        try:
            self._serve(handler, request, subs, mine, deadline)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except _CLIENT_GONE:
            pass  # the client hung up (a renewal, a stop): nothing more to say
        finally:
            handler.close_connection = True
            with self._cond:
                self._streams[request.principal] -= 1
                now = self.clock()
                for sub in subs:
                    sub.streams -= 1
                    sub.last_seen = now

    def _serve(self, handler: BaseHTTPRequestHandler, request: EwsRequest, subs: list[_Subscription],
               mine: set[str], deadline: float) -> None:
        op = "GetStreamingEvents"
        first = True
        last_sent = self.clock()
        while True:
            with self._cond:
                now = self.clock()
                if not first and not any(s.queue for s in subs) and not (mine & self._dropped) and not self._closing:
                    self._cond.wait(timeout=max(0.0, min(deadline, last_sent + self.keepalive_seconds) - now))
                now = self.clock()
                dropped = tuple(sorted(mine & self._dropped))
                batches = []
                for sub in subs:
                    if sub.queue and sub.id not in dropped:
                        taken, sub.queue[:] = sub.queue[:MAX_EVENTS_PER_NOTIFICATION], sub.queue[
                            MAX_EVENTS_PER_NOTIFICATION:]
                        batches.append((sub.id, taken))
                        sub.last_seen = now
                closing = self._closing
            if dropped:
                failure = _Failure("ErrorSubscriptionNotFound", "The specified subscription was not found.", dropped)
                _chunk(handler, self.sim.ews_body(request, _error(op, failure, closed=True)))
                return
            if batches or first or now >= last_sent + self.keepalive_seconds:
                notes = "".join(f"<m:Notification><t:SubscriptionId>{sid}</t:SubscriptionId>{''.join(events)}"
                                "</m:Notification>" for sid, events in batches)
                with self._cond:
                    self.events_sent += sum(len(events) for _, events in batches)
                body = f"<m:Notifications>{notes}</m:Notifications>" if notes else ""
                body += "<m:ConnectionStatus>OK</m:ConnectionStatus>"
                _chunk(handler, self.sim.ews_body(request, success_message(op, body)))
                last_sent, first = now, False
            if closing or now >= deadline:
                closed = success_message(op, "<m:ConnectionStatus>Closed</m:ConnectionStatus>")
                _chunk(handler, self.sim.ews_body(request, closed))
                return


# ---- small helpers

def _text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def _new_id() -> str:
    return secrets.token_urlsafe(24)


def _affinity_cookie(anchor: str) -> str:
    return "sim-mbx01~" + secrets.token_hex(4) + "~" + str(abs(hash(anchor)) % 10_000)


def _cookie(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def _error(op: str, failure: _Failure, closed: bool = False) -> str:
    bad = "".join(f"<t:SubscriptionId>{esc(i)}</t:SubscriptionId>" for i in failure.bad_ids)
    extra = (f"<m:ErrorSubscriptionIds>{bad}</m:ErrorSubscriptionIds>" if bad else "") + (
        "<m:ConnectionStatus>Closed</m:ConnectionStatus>" if closed else "")
    return error_message(op, MessageError(failure.code, failure.message), extra)


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, extra: dict[str, str]) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "text/xml; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    for key, value in extra.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _chunk(handler: BaseHTTPRequestHandler, text: str) -> None:
    data = text.encode("utf-8")
    handler.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()
