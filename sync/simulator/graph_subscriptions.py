"""The Graph simulator's change notifications: `/subscriptions` and the POSTs to the subscriber.

Served (through `graph_server`): POST /subscriptions, GET /subscriptions[/{id}], PATCH /subscriptions/{id}
(renew: `expirationDateTime`), DELETE /subscriptions/{id}. As Graph does:

- Creating one runs the validation handshake first: a POST to `notificationUrl?validationToken=...`
  (and to `lifecycleNotificationUrl`, when given and different) that must answer 200 with the token as
  text/plain within 10 s; otherwise the subscription is refused with 400 `ValidationError`.
- Outlook resources (`users/{id}/events`, `users/{id}/contacts`) live at most 10,070 minutes; an expired
  subscription silently stops (it is not renewable any more).
- Every stored change of a subscribed folder (the `Organisation`'s listener) becomes a change notification
  `{"value": [{subscriptionId, clientState, changeType, resource, resourceData, tenantId, ...}]}` POSTed
  to the notificationUrl by a delivery thread; what is queued for one URL at that moment goes in one POST.
- Lifecycle notifications (`lifecycleEvent`: reauthorizationRequired, subscriptionRemoved, missed) go to the
  lifecycleNotificationUrl. A change notification the subscriber did not accept (no 2xx, no connection) is
  followed by one `missed` lifecycle notification, as Graph does after dropping undeliverable ones.

The simulator only ever POSTs to loopback addresses (127.0.0.1, ::1, localhost). Test controls:
`drop(id)` / `drop_all()` (Graph removed it: `subscriptionRemoved`), `expire_all()` (silently gone, as
after missed renewals), `send_lifecycle(id, event)`, and `wait_delivered()` to let tests wait on the queue.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import requests

from pbxsync.sync.simulator.graph_json import HttpError, error_body
from pbxsync.sync.simulator.organisation import ChangeNotice, Organisation

log = logging.getLogger("pbxsync.simulator.graph")

MAX_LIFETIME = timedelta(minutes=10070)  # Outlook message, event and contact subscriptions
VALIDATION_TIMEOUT_SECONDS = 10.0
DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_CLIENT_STATE = 128
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
CHANGE_TYPES = {"create": "created", "update": "updated", "delete": "deleted"}
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_ODATA_TYPES = {"calendar": ("#Microsoft.Graph.Event", "Events"), "contacts": ("#Microsoft.Graph.Contact", "Contacts")}


@dataclass(frozen=True)
class SimSubscription:
    id: str
    resource: str  # as the client wrote it
    mailbox: str
    folder: str  # "calendar" | "contacts"
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str
    client_state: str
    expires: datetime

    def json(self, application_id: str, tenant_id: str) -> dict[str, Any]:
        return {"id": self.id, "resource": self.resource, "applicationId": application_id,
                "changeType": ",".join(sorted(self.change_types)), "clientState": self.client_state or None,
                "notificationUrl": self.notification_url,
                "lifecycleNotificationUrl": self.lifecycle_url or None,
                "expirationDateTime": _instant_text(self.expires), "creatorId": application_id,
                "includeResourceData": False, "latestSupportedTlsVersion": "v1_2",
                "encryptionCertificate": None, "encryptionCertificateId": None,
                "notificationQueryOptions": None, "notificationUrlAppId": None, "tenantId": tenant_id}


@dataclass(frozen=True)
class _Delivery:
    url: str
    item: dict[str, Any]
    subscription_id: str
    lifecycle: bool


def _instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _parse_instant(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("not a string")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _bad_request(message: str, code: str = "InvalidRequest") -> HttpError:
    return HttpError(400, error_body(code, message))


def parse_resource(resource: object) -> tuple[str, str]:
    """(mailbox, folder) of "users/{id}/events" or "users/{id}/contacts" (leading "/" and case allowed)."""
    if not isinstance(resource, str):
        raise _bad_request("resource is required.")
    parts = [unquote(p) for p in resource.strip("/").split("/")]
    if len(parts) == 3 and parts[0].lower() == "users" and parts[2].lower() in ("events", "contacts") and parts[1]:
        return parts[1].lower(), "calendar" if parts[2].lower() == "events" else "contacts"
    raise _bad_request(f"Resource '{resource[:80]}' is not supported by this simulator "
                       "(users/{id}/events or users/{id}/contacts).", "ExtensionError")


def is_loopback_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_HOSTS


class SubscriptionService:
    """The subscriptions of one simulated tenant; thread-safe. `start()` begins delivering."""

    def __init__(self, org: Organisation, clock: Callable[[], datetime], tenant_id: str, application_id: str,
                 verify: bool | str = True) -> None:
        self.org = org
        self.clock = clock
        self.tenant_id = tenant_id
        self.application_id = application_id
        self.verify = verify  # for https notification URLs on loopback: a CA file
        self.delivered = 0  # notifications (items) a subscriber accepted
        self.failed_deliveries = 0
        self._subs: dict[str, SimSubscription] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._session = requests.Session()  # the delivery thread's; a validation uses its own connection

    # ---- lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._remove_listener = self.org.add_listener(self._on_change)
            self._thread = threading.Thread(target=self._deliver_forever, name="graph-notifications", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=DELIVERY_TIMEOUT_SECONDS + 1)
            self._thread = None
        self._session.close()

    # ---- the REST resource

    def route(self, method: str, rest: list[str], body: object, endpoint: str) -> tuple[int, dict[str, str], object]:
        """`METHOD /subscriptions[/{id}]` (`rest`: the path after "subscriptions"): (status, headers, body)."""
        if not rest and method == "POST":
            created = self.create(body)
            return 201, {"Location": f"{endpoint}/subscriptions/{created['id']}"}, created
        if not rest and method == "GET":
            return 200, {}, self.listing()
        if len(rest) == 1 and method == "GET":
            return 200, {}, self.get(rest[0])
        if len(rest) == 1 and method == "PATCH":
            return 200, {}, self.renew(rest[0], body)
        if len(rest) == 1 and method == "DELETE":
            self.delete(rest[0])
            return 204, {}, None
        raise HttpError(405, error_body("BadRequest", f"{method} is not supported for this resource."))

    def create(self, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_request("The request body must be a subscription object.")
        mailbox, folder = parse_resource(body.get("resource"))
        if not self.org.has_mailbox(mailbox):
            raise HttpError(404, error_body("ResourceNotFound", f"The requested user '{mailbox}' is invalid."))
        raw_types = body.get("changeType")
        types = frozenset(t.strip() for t in raw_types.split(",")) if isinstance(raw_types, str) else frozenset()
        if not types or not types <= set(CHANGE_TYPES.values()):
            raise _bad_request("changeType must be a comma-separated list of created, updated, deleted.")
        url, lifecycle = body.get("notificationUrl"), body.get("lifecycleNotificationUrl") or ""
        for what, value in (("notificationUrl", url), ("lifecycleNotificationUrl", lifecycle or url)):
            if not is_loopback_url(value):
                raise _bad_request(f"{what} must be an http(s) URL on loopback (the simulator notifies nothing "
                                   "else).", "ValidationError")
        client_state = body.get("clientState") or ""
        if not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE:
            raise _bad_request(f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
        expires = self._checked_expiry(body.get("expirationDateTime"))
        assert isinstance(url, str) and isinstance(lifecycle, str)  # is_loopback_url checked both
        self._validate_endpoint(url)
        if lifecycle and lifecycle != url:
            self._validate_endpoint(lifecycle)
        resource = str(body["resource"])
        sub = SimSubscription(str(uuid.uuid4()), resource, mailbox, folder, types, url, lifecycle, client_state,
                              expires)
        with self._lock:
            self._subs[sub.id] = sub
        self.org.counters.count("subscriptions.create", mailbox)
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                **sub.json(self.application_id, self.tenant_id)}

    def renew(self, subscription_id: str, body: object) -> dict[str, Any]:
        if not isinstance(body, dict) or "expirationDateTime" not in body:
            raise _bad_request("expirationDateTime is required.")
        expires = self._checked_expiry(body["expirationDateTime"])
        with self._lock:
            sub = self._live(subscription_id)
            sub = self._subs[sub.id] = replace(sub, expires=expires)
        self.org.counters.count("subscriptions.renew", sub.mailbox)
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                **sub.json(self.application_id, self.tenant_id)}

    def delete(self, subscription_id: str) -> None:
        with self._lock:
            sub = self._live(subscription_id)
            del self._subs[sub.id]
        self.org.counters.count("subscriptions.delete", sub.mailbox)

    def get(self, subscription_id: str) -> dict[str, Any]:
        with self._lock:
            sub = self._live(subscription_id)
        return sub.json(self.application_id, self.tenant_id)

    def listing(self) -> dict[str, Any]:
        with self._lock:
            self._forget_expired()
            subs = sorted(self._subs.values(), key=lambda s: s.id)
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
                "value": [s.json(self.application_id, self.tenant_id) for s in subs]}

    def _live(self, subscription_id: str) -> SimSubscription:
        """The subscription, unless unknown or expired (then 404, as Graph answers). Hold the lock."""
        self._forget_expired()
        sub = self._subs.get(subscription_id)
        if sub is None:
            raise HttpError(404, error_body("ResourceNotFound", "The object was not found."))
        return sub

    def _forget_expired(self) -> None:
        now = self.clock()
        for gone in [s.id for s in self._subs.values() if s.expires <= now]:
            del self._subs[gone]

    def _checked_expiry(self, value: object) -> datetime:
        try:
            expires = _parse_instant(value)
        except ValueError:
            raise _bad_request("expirationDateTime is not a valid date and time.") from None
        now = self.clock()
        if expires <= now:
            raise _bad_request("Subscription expiration must be in the future.", "ExtensionError")
        if expires > now + MAX_LIFETIME:
            raise _bad_request("Subscription expiration can only be 10070 minutes in the future.", "ExtensionError")
        return expires

    def _validate_endpoint(self, url: str) -> None:
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        target = url + ("&" if urlsplit(url).query else "?") + urlencode({"validationToken": token})
        failed = _bad_request("Subscription validation request failed. Notification endpoint must respond with "
                              "200 OK to validation request.", "ValidationError")
        try:
            answer = requests.post(target, data=b"", headers={"Content-Type": "text/plain; charset=utf-8"},
                                        timeout=VALIDATION_TIMEOUT_SECONDS, verify=self.verify,
                                        allow_redirects=False)
        except requests.RequestException:
            raise failed from None
        if answer.status_code != 200 or answer.content.decode("utf-8", "replace") != token:
            raise failed

    # ---- test controls

    def subscriptions(self) -> list[SimSubscription]:
        with self._lock:
            self._forget_expired()
            return list(self._subs.values())

    def drop(self, subscription_id: str) -> None:
        """Graph removed the subscription (e.g. the mailbox moved): `subscriptionRemoved`, then it is gone."""
        with self._lock:
            sub = self._subs.pop(subscription_id, None)
        if sub is None:
            raise KeyError(subscription_id)
        self._enqueue_lifecycle(sub, "subscriptionRemoved")

    def drop_all(self) -> None:
        for sub in self.subscriptions():
            self.drop(sub.id)

    def expire_all(self) -> None:
        """Every subscription ran out without renewal: gone without a word, as Graph does."""
        with self._lock:
            self._subs.clear()

    def send_lifecycle(self, subscription_id: str, event: str) -> None:
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {event!r}")
        with self._lock:
            sub = self._subs[subscription_id]
        self._enqueue_lifecycle(sub, event)

    def wait_delivered(self, timeout: float = 10.0) -> bool:
        """Block until the delivery queue is empty (for tests and benchmarks; True when it is)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # ---- delivery

    def _on_change(self, notice: ChangeNotice) -> None:
        """The organisation's listener: runs under its lock, so it only queues."""
        if notice.what != "item":  # a contacts sub-folder changed: Graph notifies items only
            return
        change_type = CHANGE_TYPES[notice.kind]
        now = self.clock()
        with self._lock:
            matching = [s for s in self._subs.values() if s.mailbox == notice.mailbox and s.folder == notice.folder
                        and change_type in s.change_types and s.expires > now]
        odata_type, segment = _ODATA_TYPES[notice.folder]
        resource = f"Users/{notice.mailbox}/{segment}/{notice.item_id}"
        for sub in matching:
            item = {"subscriptionId": sub.id, "subscriptionExpirationDateTime": _instant_text(sub.expires),
                    "changeType": change_type, "resource": resource,
                    "resourceData": {"@odata.type": odata_type, "@odata.id": resource,
                                     "@odata.etag": f'W/"{secrets.token_hex(8)}"', "id": notice.item_id},
                    "clientState": sub.client_state or None, "tenantId": self.tenant_id}
            self._put(_Delivery(sub.notification_url, item, sub.id, lifecycle=False))

    def _enqueue_lifecycle(self, sub: SimSubscription, event: str) -> None:
        if not sub.lifecycle_url:
            return  # Graph sends lifecycle notifications only to subscriptions that asked for them
        item = {"lifecycleEvent": event, "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": _instant_text(sub.expires), "resource": sub.resource,
                "clientState": sub.client_state or None, "tenantId": self.tenant_id}
        self._put(_Delivery(sub.lifecycle_url, item, sub.id, lifecycle=True))

    def _put(self, delivery: _Delivery) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(delivery)

    def _deliver_forever(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while True:  # what is queued right now goes out together, one POST per URL
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            by_url: dict[str, list[_Delivery]] = {}
            for delivery in batch:
                by_url.setdefault(delivery.url, []).append(delivery)
            for url, deliveries in by_url.items():
                self._post(url, deliveries)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _post(self, url: str, deliveries: list[_Delivery]) -> None:
        body = json.dumps({"value": [d.item for d in deliveries]}).encode()
        try:
            answer = self._session.post(url, data=body, timeout=DELIVERY_TIMEOUT_SECONDS, verify=self.verify,
                                        headers={"Content-Type": "application/json; charset=utf-8"},
                                        allow_redirects=False)
            accepted = 200 <= answer.status_code < 300
        except requests.RequestException:
            accepted = False
        if accepted:
            self.delivered += len(deliveries)
            return
        self.failed_deliveries += len(deliveries)
        log.info("graph simulator: %d notifications to %s not accepted", len(deliveries), url)
        with self._lock:
            lost = {d.subscription_id for d in deliveries if not d.lifecycle}
            subs = [self._subs[i] for i in sorted(lost) if i in self._subs]
        for sub in subs:  # failed lifecycle notifications are dropped: no loop when both URLs are down
            self._enqueue_lifecycle(sub, "missed")
