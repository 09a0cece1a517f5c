"""Graph subscriptions as plain data: what is asked for, when it is renewed, which notifications count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.sync.model import Folder
from pbxsync.sync.notify.graph_subscriptions import (
    MIN_RENEW_MARGIN,
    REQUESTED_LIFETIME,
    Subscription,
    creation_body,
    due_for_renewal,
    granted_expiry,
    new_client_state,
    next_renewal,
    renew_at,
    renewal_body,
    resource_for,
    subscription_id,
    tenant_guid,
    triage,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TENANT = "00000000-0000-0000-0000-0000000000aa"


def sub(sid: str = "s1", mailbox: str = "alice@example.com", folder: Folder = Folder.CALENDAR,
        state: str = "secret-state", granted: datetime = NOW, lifetime: timedelta = REQUESTED_LIFETIME) -> Subscription:
    return Subscription(sid, mailbox, folder, state, granted, granted + lifetime)


def note(s: Subscription, **fields: object) -> dict[str, object]:
    item: dict[str, object] = {"subscriptionId": s.id, "clientState": s.client_state, "tenantId": TENANT,
                               "changeType": "created", "resource": f"Users/{s.mailbox}/Events/AAMk1"}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}


# ---- what is asked for


def test_a_subscription_watches_the_users_events_or_contacts_with_every_change_type() -> None:
    body = creation_body("alice@example.com", Folder.CALENDAR, "https://pbx.example.com/hook", "cs", NOW)
    assert body["resource"] == "users/alice@example.com/events"
    assert body["changeType"] == "created,updated,deleted"
    assert body["notificationUrl"] == body["lifecycleNotificationUrl"] == "https://pbx.example.com/hook"
    assert body["clientState"] == "cs"
    assert resource_for("bob@example.com", Folder.CONTACTS) == "users/bob@example.com/contacts"


def test_the_requested_expiry_stays_inside_the_outlook_limit_of_10070_minutes() -> None:
    body = creation_body("alice@example.com", Folder.CONTACTS, "https://x/hook", "cs", NOW)
    asked = datetime.fromisoformat(body["expirationDateTime"].replace("Z", "+00:00"))
    assert NOW + timedelta(days=6) < asked <= NOW + timedelta(minutes=10070)
    assert renewal_body(NOW) == {"expirationDateTime": body["expirationDateTime"]}


def test_an_address_with_odd_characters_is_quoted_in_the_resource() -> None:
    assert resource_for("o'neil/x@example.com", Folder.CALENDAR) == "users/o%27neil%2Fx@example.com/events"


def test_each_subscription_gets_its_own_unguessable_client_state() -> None:
    states = {new_client_state() for _ in range(50)}
    assert len(states) == 50
    assert all(32 <= len(s) <= 128 for s in states)


def test_the_granted_expiry_is_read_from_graphs_answer_and_must_lie_ahead() -> None:
    assert granted_expiry({"expirationDateTime": "2026-11-30T09:00:00.0000000Z"}, NOW) == datetime(
        2026, 11, 30, 9, tzinfo=UTC)
    for bad in ({}, {"expirationDateTime": 5}, {"expirationDateTime": "2026-11-27T08:00:00Z"},
                {"expirationDateTime": "tomorrow"}):
        with pytest.raises(ValueError):
            granted_expiry(bad, NOW)
    assert subscription_id({"id": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"}) == "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
    with pytest.raises(ValueError):
        subscription_id({"id": ""})


# ---- renewal timing


def test_renewal_comes_two_thirds_into_the_granted_lifetime() -> None:
    s = sub(lifetime=timedelta(days=6))
    assert renew_at(s) == NOW + timedelta(days=4)


def test_a_short_grant_is_still_renewed_before_it_runs_out() -> None:
    s = sub(lifetime=timedelta(minutes=12))  # Graph may grant less than asked
    assert renew_at(s) == s.expires - MIN_RENEW_MARGIN
    assert renew_at(s) > s.granted


def test_only_subscriptions_past_their_renewal_time_are_due_oldest_expiry_first() -> None:
    early = sub("a", granted=NOW - timedelta(days=5))
    earlier = sub("b", granted=NOW - timedelta(days=6))
    fresh = sub("c", granted=NOW)
    subs = {s.id: s for s in (early, earlier, fresh)}
    assert [s.id for s in due_for_renewal(subs, NOW)] == ["b", "a"]
    assert next_renewal(subs) == renew_at(earlier)
    assert next_renewal({}) is None


# ---- which notifications count


def test_a_change_notification_of_ours_asks_for_a_sync_of_its_folder() -> None:
    s = sub()
    result = triage({"value": [note(s)]}, {s.id: s}, TENANT)
    assert result.actions == (("changed", s),)
    assert result.ignored == ()


def test_a_burst_for_one_subscription_is_one_action() -> None:
    s = sub()
    burst = {"value": [note(s, changeType=t) for t in ("created", "updated", "updated", "deleted")]}
    assert triage(burst, {s.id: s}, TENANT).actions == (("changed", s),)


def test_a_wrong_client_state_is_ignored_and_said_why() -> None:
    s = sub()
    result = triage({"value": [note(s, clientState="guess")]}, {s.id: s}, TENANT)
    assert result.actions == ()
    assert result.ignored == ("clientState mismatch",)


def test_a_missing_client_state_or_a_foreign_one_does_not_count() -> None:
    s, other = sub("s1", state="one"), sub("s2", state="two")
    subs = {s.id: s, other.id: other}
    payload = {"value": [note(s, clientState=None), note(s, clientState="two"), note(s, clientState=7)]}
    assert triage(payload, subs, TENANT).ignored == ("clientState mismatch",) * 3


def test_an_unknown_subscription_or_another_tenant_does_not_count() -> None:
    s = sub()
    payload = {"value": [note(sub("elsewhere")), note(s, tenantId="11111111-2222-3333-4444-555555555555")]}
    assert triage(payload, {s.id: s}, TENANT).ignored == ("unknown subscription", "another tenant")
    assert triage({"value": [note(s, tenantId=TENANT.upper())]}, {s.id: s}, TENANT).actions == (("changed", s),)


@pytest.mark.parametrize(("event", "action"), [("missed", "missed"), ("reauthorizationRequired", "renew"),
                                               ("subscriptionRemoved", "recreate")])
def test_lifecycle_events_map_to_their_action(event: str, action: str) -> None:
    s = sub()
    item = note(s, lifecycleEvent=event)
    del item["changeType"]
    assert triage({"value": [item]}, {s.id: s}, TENANT).actions == ((action, s),)


def test_a_lifecycle_event_with_a_wrong_client_state_is_ignored_too() -> None:
    s = sub()
    item = {"subscriptionId": s.id, "clientState": "nope", "lifecycleEvent": "subscriptionRemoved"}
    assert triage({"value": [item]}, {s.id: s}, TENANT).actions == ()


@pytest.mark.parametrize("payload", [None, [], "text", {"value": "x"}, {"values": []}, {"value": [1, "a", None]}])
def test_garbage_is_ignored_without_an_exception(payload: object) -> None:
    s = sub()
    result = triage(payload, {s.id: s}, TENANT)
    assert result.actions == ()
    assert result.ignored


def test_unknown_change_types_and_lifecycle_events_are_ignored() -> None:
    s = sub()
    item = note(s, changeType="teleported")
    other = note(s, lifecycleEvent="somethingNew")
    del other["changeType"]
    assert triage({"value": [item, other]}, {s.id: s}, TENANT).actions == ()


def test_the_tenant_is_checked_only_when_configured_as_a_guid() -> None:
    s = sub()
    foreign = {"value": [note(s, tenantId="11111111-2222-3333-4444-555555555555")]}
    assert tenant_guid(TENANT.upper()) == TENANT
    assert tenant_guid("contoso.onmicrosoft.com") == ""  # msal takes the domain; Graph sends the GUID
    assert triage(foreign, {s.id: s}, tenant_guid("contoso.onmicrosoft.com")).actions == (("changed", s),)
    assert triage(foreign, {s.id: s}, tenant_guid(TENANT)).actions == ()
