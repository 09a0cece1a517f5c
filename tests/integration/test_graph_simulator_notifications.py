"""The Graph simulator's /subscriptions, notification POSTs and $batch, held to Graph's documented behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.config import SyncConfig
from pbxsync.sync.errors import SourceBusyError
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.notify.graph_receiver import NotificationReceiver
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Fault, Organisation
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.graph_client import GraphClient, GraphNotFoundError, GraphRequestError
from tests.support.graph import MAILBOXES, MAILBOXES_NOW, graph_config

ALICE, BOB = "alice@example.com", "bob@example.com"
PATH = "/hook"
ANY_PORT = ListenAddress("127.0.0.1", 0)


class Clock:
    """The simulator's clock, moved by hand (subscription expiry is checked against it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org() -> Organisation:
    return Organisation.load_file(MAILBOXES, now=MAILBOXES_NOW)


@pytest.fixture
def sim(org: Organisation, clock: Clock, tmp_path: Path) -> Iterator[GraphSimulator]:
    with GraphSimulator(org, tls_dir=tmp_path / "tls", clock=clock) as server:
        yield server


@pytest.fixture
async def client(sim: GraphSimulator) -> AsyncIterator[GraphClient]:
    source = GraphSource(graph_config(sim), SyncConfig(), max_retry_wait_seconds=0.01)
    yield source.client
    await source.close()


@pytest.fixture
async def hook() -> AsyncIterator[tuple[NotificationReceiver, asyncio.Queue[Any]]]:
    got: asyncio.Queue[Any] = asyncio.Queue()
    receiver = NotificationReceiver(ANY_PORT, PATH, got.put_nowait)
    await receiver.start()
    yield receiver, got
    await receiver.close()


def url_of(receiver: NotificationReceiver, path: str = PATH) -> str:
    return f"http://127.0.0.1:{receiver.port}{path}"


async def subscribe(client: GraphClient, clock: Clock, notify: str, lifecycle: str | None = None,
                    resource: str = f"users/{ALICE}/contacts", **extra: Any) -> dict[str, Any]:
    body = {"changeType": "created,updated,deleted", "notificationUrl": notify, "resource": resource,
            "expirationDateTime": (clock.now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "clientState": "state-1", **extra}
    if lifecycle:
        body["lifecycleNotificationUrl"] = lifecycle
    return await client.request_json(ALICE, "POST", client.url("/subscriptions"), body)


async def next_item(got: asyncio.Queue[Any]) -> dict[str, Any]:
    payload = await asyncio.wait_for(got.get(), 5)
    assert isinstance(payload, dict) and len(payload["value"]) == 1
    item: dict[str, Any] = payload["value"][0]
    return item


# ---- subscriptions


async def test_a_subscription_is_refused_unless_the_endpoint_echoes_the_token(
        client: GraphClient, clock: Clock, hook: tuple[NotificationReceiver, asyncio.Queue[Any]]) -> None:
    receiver, _ = hook  # not validating: it answers 403
    with pytest.raises(GraphRequestError) as caught:
        await subscribe(client, clock, url_of(receiver))
    assert caught.value.status == 400 and caught.value.code == "ValidationError"
    assert "must respond with 200 OK" in str(caught.value)


async def test_a_change_is_posted_with_the_client_state_and_the_resource(
        client: GraphClient, clock: Clock, org: Organisation, sim: GraphSimulator,
        hook: tuple[NotificationReceiver, asyncio.Queue[Any]]) -> None:
    receiver, got = hook
    with receiver.validating():
        created = await subscribe(client, clock, url_of(receiver))
    assert created["resource"] == f"users/{ALICE}/contacts" and created["clientState"] == "state-1"
    assert created["expirationDateTime"].startswith((clock.now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S"))
    stored = org.add_contact(ALICE, ContactRecord("", "", "New Person"))
    item = await next_item(got)
    assert item["subscriptionId"] == created["id"] and item["clientState"] == "state-1"
    assert item["changeType"] == "created" and item["tenantId"] == sim.app.tenant_id
    assert item["resourceData"]["id"] == stored.item_id
    assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Contact"
    org.delete_contact(ALICE, stored.item_id)
    assert (await next_item(got))["changeType"] == "deleted"


async def test_only_the_subscribed_mailbox_folder_and_change_types_are_notified(
        client: GraphClient, clock: Clock, org: Organisation, sim: GraphSimulator,
        hook: tuple[NotificationReceiver, asyncio.Queue[Any]]) -> None:
    receiver, got = hook
    with receiver.validating():
        await subscribe(client, clock, url_of(receiver), resource=f"users/{ALICE}/events", changeType="deleted")
    org.add_contact(ALICE, ContactRecord("", "", "Not a calendar change"))
    org.update_meeting("offsite", subject="An update, not a delete")
    org.add_contact(BOB, ContactRecord("", "", "Another mailbox"))
    assert sim.subscriptions.wait_delivered()
    assert got.empty()
    org.cancel_meeting("weekly-standup")  # Alice organises it: her copy is deleted
    item = await next_item(got)
    assert item["changeType"] == "deleted" and item["resource"].startswith(f"Users/{ALICE}/Events/")


async def test_renew_delete_and_the_expiry_limit(
        client: GraphClient, clock: Clock, sim: GraphSimulator,
        hook: tuple[NotificationReceiver, asyncio.Queue[Any]]) -> None:
    receiver, _ = hook
    with receiver.validating():
        created = await subscribe(client, clock, url_of(receiver))
    sub_url = client.url(f"/subscriptions/{created['id']}")
    later = (clock.now + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    renewed = await client.request_json(ALICE, "PATCH", sub_url, {"expirationDateTime": later})
    assert renewed["expirationDateTime"].startswith(later[:-1])
    too_far = (clock.now + timedelta(minutes=10071)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(GraphRequestError, match="10070 minutes"):
        await client.request_json(ALICE, "PATCH", sub_url, {"expirationDateTime": too_far})
    listed = await client.request_json("x", "GET", client.url("/subscriptions"))
    assert [s["id"] for s in listed["value"]] == [created["id"]]
    assert await client.request_json(ALICE, "DELETE", sub_url) == {}
    with pytest.raises(GraphNotFoundError):
        await client.request_json(ALICE, "GET", sub_url)


async def test_an_expired_subscription_is_silent_and_cannot_be_renewed(
        client: GraphClient, clock: Clock, org: Organisation, sim: GraphSimulator,
        hook: tuple[NotificationReceiver, asyncio.Queue[Any]]) -> None:
    receiver, got = hook
    with receiver.validating():
        created = await subscribe(client, clock, url_of(receiver))
    clock.now += timedelta(days=3, seconds=1)
    sim.expire_tokens()  # the sim's clock jumped past the token too; the client fetches a new one
    org.add_contact(ALICE, ContactRecord("", "", "Too late"))
    assert sim.subscriptions.wait_delivered() and got.empty()
    with pytest.raises(GraphNotFoundError):
        await client.request_json(ALICE, "PATCH", client.url(f"/subscriptions/{created['id']}"),
                                  {"expirationDateTime": (clock.now + timedelta(days=1)).isoformat()})


async def test_lifecycle_events_go_to_the_lifecycle_url(
        client: GraphClient, clock: Clock, org: Organisation, sim: GraphSimulator) -> None:
    notes: asyncio.Queue[Any] = asyncio.Queue()
    cycles: asyncio.Queue[Any] = asyncio.Queue()
    notify = NotificationReceiver(ANY_PORT, PATH, notes.put_nowait)
    lifecycle = NotificationReceiver(ANY_PORT, "/life", cycles.put_nowait)
    await notify.start()
    await lifecycle.start()
    try:
        with notify.validating(), lifecycle.validating():
            created = await subscribe(client, clock, url_of(notify), url_of(lifecycle, "/life"))
        sim.subscriptions.send_lifecycle(created["id"], "reauthorizationRequired")
        item = await next_item(cycles)
        assert item["lifecycleEvent"] == "reauthorizationRequired" and item["clientState"] == "state-1"
        await notify.close()  # the subscriber is unreachable: the change is lost, a `missed` follows
        org.add_contact(ALICE, ContactRecord("", "", "Lost"))
        assert (await next_item(cycles))["lifecycleEvent"] == "missed"
        sim.subscriptions.drop(created["id"])
        assert (await next_item(cycles))["lifecycleEvent"] == "subscriptionRemoved"
        assert sim.subscriptions.subscriptions() == []
    finally:
        await notify.close()
        await lifecycle.close()


async def test_only_loopback_urls_are_notified(client: GraphClient, clock: Clock) -> None:
    with pytest.raises(GraphRequestError, match="loopback"):
        await subscribe(client, clock, "https://203.0.113.9/hook")


# ---- $batch


def delta_request(rid: str, mailbox: str) -> dict[str, Any]:
    return {"id": rid, "method": "GET", "url": f"/users/{mailbox}/contacts/delta",
            "headers": {"Prefer": "odata.maxpagesize=1"}}


async def test_a_batch_answers_each_request_by_id(client: GraphClient) -> None:
    answer = await client.request_json("b", "POST", client.url("/$batch"), {"requests": [
        delta_request("1", ALICE), delta_request("2", BOB), delta_request("3", "nobody@example.com")]})
    by_id = {r["id"]: r for r in answer["responses"]}
    assert [r["id"] for r in answer["responses"]] == ["3", "2", "1"]  # any order, as Graph does
    assert by_id["1"]["status"] == 200 and len(by_id["1"]["body"]["value"]) == 1
    assert "@odata.nextLink" in by_id["1"]["body"]
    assert by_id["3"]["status"] == 404 and by_id["3"]["body"]["error"]["code"] == "ErrorInvalidUser"


async def test_a_429_inside_a_batch_holds_back_only_that_request(client: GraphClient, org: Organisation) -> None:
    org.inject_fault(Fault("server_busy", back_off_ms=9000), operation="contacts.delta", mailbox=BOB)
    answer = await client.request_json("b", "POST", client.url("/$batch"),
                                       {"requests": [delta_request("a", ALICE), delta_request("b", BOB)]})
    by_id = {r["id"]: r for r in answer["responses"]}
    assert by_id["a"]["status"] == 200
    assert by_id["b"]["status"] == 429 and by_id["b"]["headers"]["Retry-After"] == "9"


async def test_the_batch_itself_can_be_throttled(client: GraphClient, org: Organisation) -> None:
    org.inject_fault(Fault("server_busy", back_off_ms=600_000), operation="$batch")
    with pytest.raises(SourceBusyError):
        await client.request_json("b", "POST", client.url("/$batch"), {"requests": [delta_request("1", ALICE)]})


@pytest.mark.parametrize(("requests", "message"), [
    ([delta_request(str(i), ALICE) for i in range(21)], "limit is 20"),
    ([delta_request("x", ALICE), delta_request("X", BOB)], "used twice"),
    ([], "empty"),
    ([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}], "relative"),
    ([{"id": "1", "method": "POST", "url": "/subscriptions", "body": {}}], "Content-Type"),
    ([{**delta_request("1", ALICE), "dependsOn": ["2"]}, delta_request("2", BOB)], "depends on"),
])
async def test_malformed_batches_are_refused_whole(client: GraphClient, requests: list[Any], message: str) -> None:
    with pytest.raises(GraphRequestError, match=message):
        await client.request_json("b", "POST", client.url("/$batch"), {"requests": requests})


async def test_twenty_requests_are_fine_and_each_counts(client: GraphClient, org: Organisation) -> None:
    org.counters.reset()
    answer = await client.request_json("b", "POST", client.url("/$batch"),
                                       {"requests": [delta_request(str(i), ALICE) for i in range(20)]})
    assert {r["status"] for r in answer["responses"]} == {200}
    assert org.counters.get("$batch") == 1 and org.counters.get("contacts.delta", ALICE) == 20
