"""Graph change-notification subscriptions as plain data: what to ask for, when to renew, and what an
incoming notification means. Pure functions; `graph_feed` does the requests.

Rules:
- One subscription per synced folder: `users/{mailbox}/events` (calendar) or `users/{mailbox}/contacts`,
  changeType created,updated,deleted, the lifecycle URL equal to the notification URL (Graph allows it;
  one path for the reverse proxy), and a fresh random `clientState` per subscription.
- Outlook resources live at most 10,070 minutes; pbxsync asks for 10,000 and renews once two thirds of
  what Graph granted have passed (about 2.3 days before expiry), so a daemon that is down for a day
  still finds its subscriptions alive.
- A notification counts only if its subscriptionId is one of ours and its clientState matches that
  subscription's (compared in constant time), and its tenantId (when given) is ours (checked when the
  configured tenant_id is the tenant's GUID; msal also accepts its domain name, which Graph never
  sends). Anything else is answered like the rest (202) and ignored; the caller logs why, never values.
- A change notification means "sync that folder" (reason "event"); lifecycle `missed` means the same
  with reason "missed"; `reauthorizationRequired` means renew; `subscriptionRemoved` means create a new
  subscription and then sync the folder (reason "resubscribed").
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pbxsync.sync.model import Folder
from pbxsync.sync.sources.graph_client import user_path

REQUESTED_LIFETIME = timedelta(minutes=10000)  # Graph's limit for Outlook resources is 10,070 minutes
RENEW_AFTER_FRACTION = 2 / 3
MIN_RENEW_MARGIN = timedelta(minutes=10)
CHANGE_TYPES = "created,updated,deleted"
MAX_NOTIFICATIONS = 1000  # per POST; Graph sends far fewer
_RESOURCES = {Folder.CALENDAR: "events", Folder.CONTACTS: "contacts"}

Action = Literal["changed", "missed", "renew", "recreate"]
_LIFECYCLE_ACTIONS: dict[str, Action] = {"missed": "missed", "reauthorizationRequired": "renew",
                                         "subscriptionRemoved": "recreate"}


@dataclass(frozen=True)
class Subscription:
    id: str
    mailbox: str
    folder: Folder
    client_state: str
    granted: datetime  # when Graph created or last renewed it
    expires: datetime


@dataclass(frozen=True)
class Triage:
    """What one POST of notifications asks for, deduplicated, and why items were ignored."""

    actions: tuple[tuple[Action, Subscription], ...] = ()
    ignored: tuple[str, ...] = field(default_factory=tuple)


def resource_for(mailbox: str, folder: Folder) -> str:
    return user_path(mailbox).lstrip("/") + "/" + _RESOURCES[folder]


def new_client_state() -> str:
    return secrets.token_urlsafe(32)  # 43 characters; Graph allows 128


def instant_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def creation_body(mailbox: str, folder: Folder, notification_url: str, client_state: str,
                  now: datetime) -> dict[str, Any]:
    return {"changeType": CHANGE_TYPES, "notificationUrl": notification_url,
            "lifecycleNotificationUrl": notification_url, "resource": resource_for(mailbox, folder),
            "expirationDateTime": instant_text(now + REQUESTED_LIFETIME), "clientState": client_state}


def renewal_body(now: datetime) -> dict[str, Any]:
    return {"expirationDateTime": instant_text(now + REQUESTED_LIFETIME)}


def granted_expiry(answer: Mapping[str, Any], now: datetime) -> datetime:
    """The expirationDateTime Graph granted (it may give less than asked); ValueError if unusable."""
    text = answer.get("expirationDateTime")
    if not isinstance(text, str):
        raise ValueError("no expirationDateTime")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment <= now:
        raise ValueError("expirationDateTime is not in the future")
    return moment


def subscription_id(answer: Mapping[str, Any]) -> str:
    sid = answer.get("id")
    if not isinstance(sid, str) or not sid or len(sid) > 200:
        raise ValueError("no usable subscription id")
    return sid


def renew_at(sub: Subscription) -> datetime:
    """Two thirds into the granted lifetime, and never later than MIN_RENEW_MARGIN before expiry."""
    lifetime = sub.expires - sub.granted
    return min(sub.granted + lifetime * RENEW_AFTER_FRACTION, sub.expires - MIN_RENEW_MARGIN)


def due_for_renewal(subs: Mapping[str, Subscription], now: datetime) -> list[Subscription]:
    return sorted((s for s in subs.values() if renew_at(s) <= now), key=lambda s: (s.expires, s.id))


def next_renewal(subs: Mapping[str, Subscription]) -> datetime | None:
    return min((renew_at(s) for s in subs.values()), default=None)


def tenant_guid(tenant_id: str) -> str:
    """The configured tenant as Graph names it in notifications (a GUID), or "" when it is a domain name."""
    try:
        return str(uuid.UUID(tenant_id))
    except ValueError:
        return ""


def is_ours(item: Mapping[str, Any], subs: Mapping[str, Subscription], tenant_id: str) -> Subscription | str:
    """The subscription a notification belongs to, or why it does not count ("" tenant_id: not checked)."""
    sid = item.get("subscriptionId")
    sub = subs.get(sid) if isinstance(sid, str) else None
    if sub is None:
        return "unknown subscription"
    state = item.get("clientState")
    if not isinstance(state, str) or not hmac.compare_digest(state.encode(), sub.client_state.encode()):
        return "clientState mismatch"
    tenant = item.get("tenantId")
    if tenant_id and tenant is not None and (not isinstance(tenant, str) or tenant.lower() != tenant_id.lower()):
        return "another tenant"
    return sub


def triage(payload: object, subs: Mapping[str, Subscription], tenant_id: str) -> Triage:
    """Read a POSTed `{"value": [...]}` of change and lifecycle notifications."""
    if not isinstance(payload, dict) or not isinstance(payload.get("value"), list):
        return Triage(ignored=("not a notification collection",))
    actions: dict[tuple[Action, str], tuple[Action, Subscription]] = {}
    ignored: list[str] = []
    for item in payload["value"][:MAX_NOTIFICATIONS]:
        if not isinstance(item, dict):
            ignored.append("not an object")
            continue
        owner = is_ours(item, subs, tenant_id)
        if isinstance(owner, str):
            ignored.append(owner)
            continue
        event = item.get("lifecycleEvent")
        action: Action | None
        if event is not None:
            action = _LIFECYCLE_ACTIONS.get(event if isinstance(event, str) else "")
        else:
            action = "changed" if item.get("changeType") in ("created", "updated", "deleted") else None
        if action is None:
            ignored.append("unknown change type or lifecycle event")
            continue
        actions.setdefault((action, owner.id), (action, owner))
    return Triage(tuple(actions.values()), tuple(ignored))
