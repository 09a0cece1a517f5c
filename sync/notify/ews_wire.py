"""The exchangelib edge of EWS streaming notifications. Synchronous: every function here runs in a thread.

exchangelib 5.6 has the Subscribe, GetStreamingEvents and Unsubscribe services, but falls short for a
daemon watching many mailboxes; small subclasses close the gaps:
- It sends X-AnchorMailbox = the request's own mailbox. Grouping needs the group's anchor on every
  request, X-PreferServerAffinity, and the X-BackEndOverrideCookie Exchange sets on the group's first
  Subscribe sent back on all later ones (`Affinity`).
- It takes HTTP sessions from the account's pool, which under impersonation is ONE pool for the whole
  organisation (exchangelib caches a protocol per endpoint and credentials): a GetStreamingEvents held for
  minutes would take a session from the sync's own calls. Each group here has sessions of its own.
- A GetStreamingEvents waiting for data cannot be stopped. `StreamHandle.abort()` shuts the socket down
  from another thread (urllib3's `HTTPResponse.shutdown`), so stopping the daemon is prompt.
- On an error it keeps the ErrorSubscriptionIds only inside the message text, and looks for them in the
  wrong namespace at that; we read the list.
Exceptions never leave as exchangelib's: `describe` turns them into one-line messages (the two throttling
limits an admin can act on, EWSMaxSubscriptions and the hanging-connection limit, spelled out).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from exchangelib import errors as ews_errors
from exchangelib.services import GetStreamingEvents, SubscribeToStreaming, Unsubscribe
from exchangelib.util import MNS, TNS, get_xml_attrs

from pbxsync.sync.model import Folder
from pbxsync.sync.sources.ews import _map_error
from pbxsync.sync.sources.ews_contacts import contact_folders

log = logging.getLogger("pbxsync.notify.ews")
COOKIE = "X-BackEndOverrideCookie"
EVENT_TYPES = ("CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "CopiedEvent")
# The subscription is gone on the server: re-create it (and sync its folders once, to miss nothing).
LOST_CODES = frozenset({"ErrorSubscriptionNotFound", "ErrorInvalidSubscription", "ErrorReadEventsFailed",
                        "ErrorInvalidWatermark", "ErrorMissedNotificationEvents", "ErrorInvalidSubscriptionRequest",
                        "ErrorProxyRequestNotAllowed"})


class Affinity:
    """One group's routing to its Mailbox server: the anchor and the cookie Exchange handed out."""

    def __init__(self, anchor: str) -> None:
        self.anchor = anchor
        self._cookie = ""
        self._lock = threading.Lock()

    @property
    def cookie(self) -> str:
        with self._lock:
            return self._cookie

    def remember(self, response: Any) -> None:
        value = response.cookies.get(COOKIE)
        if isinstance(value, str) and value:
            with self._lock:
                self._cookie = value

    def apply(self, session: Any) -> None:
        cookie = self.cookie
        if cookie:
            session.cookies.set(COOKIE, cookie)


class _GroupService:
    """Mixin for exchangelib services: the group's session and headers instead of the account's pool."""

    affinity: Affinity
    session: Any
    response: Any = None

    def _extra_headers(self) -> dict[str, str]:
        headers: dict[str, str] = dict(super()._extra_headers())  # type: ignore[misc]
        headers.pop(COOKIE, None)  # exchangelib's per-account cookie header; ours travels as the cookie
        headers["X-AnchorMailbox"] = self.affinity.anchor
        headers["X-PreferServerAffinity"] = "True"
        return headers

    def _handle_response_cookies(self, session: Any) -> None:
        """The cookie belongs to the group (`Affinity`), not to one account as exchangelib keeps it."""

    def _get_response(self, payload: Any, api_version: str) -> Any:
        svc: Any = self
        self.affinity.apply(self.session)
        response = self.session.post(
            url=svc.protocol.service_endpoint, headers=self._extra_headers(),
            data=svc.wrap(content=payload, api_version=api_version), allow_redirects=False,
            timeout=svc.timeout or svc.protocol.TIMEOUT, stream=svc.streaming)
        self.response = response
        self._after_response(response)
        svc.protocol.retry_policy.raise_response_errors(response)  # 401, 5xx... as exchangelib's errors
        self.affinity.remember(response)
        return response

    def _after_response(self, response: Any) -> None:
        """Hook: the streaming service checks for an abort that came while the request was on its way."""

    def stop_streaming(self) -> None:
        if self.response is not None:
            self.response.close()


class _Subscribe(_GroupService, SubscribeToStreaming):  # type: ignore[misc]
    pass


class _Unsubscribe(_GroupService, Unsubscribe):  # type: ignore[misc]
    pass


class _StreamingEvents(_GroupService, GetStreamingEvents):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_subscription_ids: tuple[str, ...] = ()
        self.aborted = threading.Event()
        self.heard: Callable[[bool], None] = lambda ok: None  # every message, keep-alives included

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        self.heard(message.get("ResponseClass") == "Success")
        bad = message.find(f"{{{MNS}}}ErrorSubscriptionIds")
        if bad is not None:
            # The ids are t:SubscriptionId (types.xsd's NonEmptyArrayOfSubscriptionIdsType); exchangelib looks
            # for m:SubscriptionId and finds none (tests/unit/test_ews_streaming_wire.py pins it). Both are read.
            found = [*get_xml_attrs(bad, f"{{{TNS}}}SubscriptionId"), *get_xml_attrs(bad, f"{{{MNS}}}SubscriptionId")]
            self.error_subscription_ids = tuple(str(i).strip() for i in found if i)
        return super()._get_element_container(message=message, name=name)

    def _after_response(self, response: Any) -> None:
        if self.aborted.is_set():
            _shutdown(response)

    def abort(self) -> None:
        self.aborted.set()
        if self.response is not None:
            _shutdown(self.response)


def _shutdown(response: Any) -> None:
    """Wake a thread blocked reading `response` (another thread calls this)."""
    try:
        response.raw.shutdown()  # urllib3 >= 2.3: shuts the socket's reading side
    except Exception:  # already released or closed: closing is all that is left to do
        response.close()


class GroupSessions:
    """The HTTP sessions of one connection group: up to `short_sessions` for short calls (Subscribe,
    Unsubscribe; several may run at once), and one for the long GetStreamingEvents (a session has one
    connection, and the stream holds it for minutes). Thread-safe."""

    def __init__(self, protocol: Any, affinity: Affinity, short_sessions: int = 4) -> None:
        self.protocol = protocol
        self.affinity = affinity
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._short: list[Any] = []
        self._limit = short_sessions
        self._lock = threading.Lock()
        self._long: Any = None

    @contextlib.contextmanager
    def short(self) -> Iterator[Any]:
        """A session for one short call, back in the pool afterwards."""
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                fresh = len(self._short) < self._limit
                if fresh:
                    self._short.append(session := self.protocol.create_session())
            if not fresh:
                session = self._idle.get()
        try:
            yield session
        finally:
            self._idle.put(session)

    def long(self) -> Any:
        if self._long is None:
            self._long = self.protocol.create_session()
        return self._long

    def drop_long(self) -> None:
        """After a failed or aborted stream the session's connection is unusable: start afresh next time."""
        session, self._long = self._long, None
        if session is not None:
            session.close()

    def close(self) -> None:
        with self._lock:
            sessions, self._short = [*self._short, self._long], []
        self._long = None
        for session in sessions:
            if session is not None:
                session.close()


def _service(cls: type[Any], account: Any, sessions: GroupSessions, session: Any) -> Any:
    svc = cls(account=account)
    svc.affinity = sessions.affinity
    svc.session = session
    return svc


def watched_folders(account: Any, folders: Sequence[Folder]) -> tuple[dict[str, Folder], list[Any]]:
    """The Exchange folders behind a mailbox's synced folders: the calendar; Contacts and every phonebook
    folder below it (what a contacts pass reads, sync.sources.ews_contacts). Returns their ids (events name
    their folder by these) and the exchangelib folders to subscribe to."""
    ids: dict[str, Folder] = {}
    chosen: list[Any] = []
    for folder in folders:
        found = [account.calendar] if folder is Folder.CALENDAR else [f for _, _, f in contact_folders(account)]
        for exchange_folder in found:
            ids[str(exchange_folder.id)] = folder
            chosen.append(exchange_folder)
    return ids, chosen


def is_structural(event: Any) -> bool:
    """A folder created, deleted, moved or copied (not merely modified): the set of folders to watch may
    have changed (a new phonebook folder below Contacts)."""
    return getattr(event, "folder_id", None) is not None and type(event).__name__ != "ModifiedEvent"


def subscribe(account: Any, exchange_folders: Sequence[Any], sessions: GroupSessions) -> str:
    """One streaming subscription on `exchange_folders` (of one mailbox); returns its SubscriptionId."""
    with sessions.short() as session, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = list(_service(_Subscribe, account, sessions, session).call(folders=exchange_folders,
                                                                             event_types=EVENT_TYPES))
    for result in results:
        if isinstance(result, Exception):
            raise result
        if isinstance(result, str) and result:
            return result
    raise ews_errors.TransportError("Subscribe gave no SubscriptionId")


def unsubscribe(account: Any, subscription_id: str, sessions: GroupSessions) -> None:
    with sessions.short() as session:
        for result in _service(_Unsubscribe, account, sessions, session).call(subscription_id=subscription_id):
            if isinstance(result, Exception):
                raise result


def unsubscribe_all(leftovers: Sequence[tuple[Any, str]], sessions: GroupSessions, close: bool = True) -> None:
    """(account, subscription id) pairs, best effort: give Exchange its subscription budget back now rather
    than in 30 minutes. At stop (`close`) the group's sessions are closed afterwards."""
    try:
        for account, subscription_id in leftovers:
            try:
                unsubscribe(account, subscription_id, sessions)
            except Exception as exc:  # the process may be ending; an unanswered Unsubscribe expires anyway
                log.debug("EWS streaming: unsubscribe failed: %s", describe(exc, mailbox_of(account)))
    finally:
        if close:
            sessions.close()


@dataclass(frozen=True)
class StreamEnd:
    """How one GetStreamingEvents connection ended."""

    kind: str  # "closed" (ConnectionStatus Closed or end of stream) | "aborted" | "lost" | "error"
    lost_ids: tuple[str, ...] = ()  # "lost": the subscriptions Exchange no longer knows
    code: str = ""  # the Exchange error code, if any
    message: str = ""  # one line, for logs and status


EventSink = Callable[[str, tuple[str, ...], bool], None]  # subscription id, folder ids named, is_structural


class StreamHandle:
    """Lets another thread abort a running `stream` call (the daemon stopping, or a renewal)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._svc: _StreamingEvents | None = None
        self.aborted = False

    def attach(self, svc: _StreamingEvents) -> None:
        with self._lock:
            self._svc = svc
            if self.aborted:
                svc.aborted.set()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            svc = self._svc
        if svc is not None:
            svc.abort()


def event_folder_ids(event: Any) -> tuple[str, ...]:
    ids = []
    for name in ("parent_folder_id", "old_parent_folder_id", "folder_id", "old_folder_id"):
        ref = getattr(event, name, None)
        value = getattr(ref, "id", None)
        if isinstance(value, str) and value:
            ids.append(value)
    return tuple(ids)


def stream(account: Any, subscription_ids: Sequence[str], minutes: int, sessions: GroupSessions,
           handle: StreamHandle, on_event: EventSink, on_message: Callable[[bool], None]) -> StreamEnd:
    """One GetStreamingEvents connection for `subscription_ids`, until Exchange closes it, it fails, or
    `handle.abort()`. `on_event` hears every item or folder event; `on_message(ok)` every envelope
    (keep-alives too: the connection is alive; ok = not an error message)."""
    svc = _service(_StreamingEvents, account, sessions, sessions.long())
    svc.heard = on_message
    handle.attach(svc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for notification in svc.call(subscription_ids=list(subscription_ids), connection_timeout=minutes):
                if isinstance(notification, Exception):
                    raise notification
                subscription_id = str(getattr(notification, "subscription_id", "") or "")
                for event in getattr(notification, "events", None) or ():
                    folders = event_folder_ids(event)
                    if folders or getattr(event, "item_id", None) is not None:
                        on_event(subscription_id, folders, is_structural(event))
        return StreamEnd("aborted" if handle.aborted else "closed")
    except Exception as exc:
        if handle.aborted:
            return StreamEnd("aborted")
        code = type(exc).__name__
        if code in LOST_CODES:
            return StreamEnd("lost", svc.error_subscription_ids or tuple(subscription_ids), code,
                             describe(exc, account.primary_smtp_address))
        return StreamEnd("error", (), code, describe(exc, account.primary_smtp_address))
    finally:
        sessions.drop_long()


def describe(exc: BaseException, mailbox: str) -> str:
    """One line for an exchangelib failure of a streaming call (no secret, no XML)."""
    who = f"EWS {mailbox}"
    if isinstance(exc, ews_errors.ErrorExceededSubscriptionCount):
        return (f"{who}: Exchange refused another subscription (ErrorExceededSubscriptionCount): the "
                "throttling policy's EWSMaxSubscriptions is reached (Exchange Online: 20 per mailbox; "
                "on-premises: 5000 by default); raise it for the service account or leave the folder on "
                "timed polling")
    if isinstance(exc, ews_errors.ErrorExceededConnectionCount):
        return (f"{who}: Exchange refused another streaming connection (ErrorExceededConnectionCount): the "
                "hanging-connection limit is reached (on-premises HangingConnectionLimit, 3 by default; "
                "Exchange Online 10); another client uses them, or the limit must be raised")
    if type(exc).__name__ in LOST_CODES:
        return f"{who}: the subscription is gone on Exchange ({type(exc).__name__})"
    return str(_map_error(exc, mailbox))


def mailbox_of(account: Any) -> str:
    return str(account.primary_smtp_address).lower()


def owner_of(account: Any) -> tuple[str, str]:
    """(endpoint, owning identity) of an account: subscriptions belong to whoever authenticates."""
    protocol = account.protocol
    username = getattr(protocol.credentials, "username", "") or ""
    return str(protocol.service_endpoint), str(username).lower()
