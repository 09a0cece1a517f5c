"""The Graph change feed against the Graph simulator over HTTPS: webhooks and batched delta polling.

Time is a FakeClock shared by the feed and the simulator (subscription expiry, renewals, poll rounds);
the only real waits are bounded waits for a notification that is already on its way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.model import Folder
from pbxsync.sync.notify.base import FolderChanged
from pbxsync.sync.notify.graph_feed import GraphChangeFeed, make_graph_feed
from pbxsync.sync.notify.graph_poller import COLD_RETRY_SECONDS
from pbxsync.sync.notify.graph_subscriptions import renew_at
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Fault, Organisation
from pbxsync.sync.sources.graph import GraphSource
from tests.support.graph import MAILBOXES, MAILBOXES_NOW, graph_config
from tests.support.ports import port_for_config, refused_port

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
FOLDERS = [(m, f) for m in (ALICE, BOB, CAROL) for f in (Folder.CALENDAR, Folder.CONTACTS)]
HOOK = "/pbxsync/graph/notify"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def org() -> Organisation:
    return Organisation.load_file(MAILBOXES, now=MAILBOXES_NOW)


@pytest.fixture
def sim(org: Organisation, clock: FakeClock, tmp_path: Path) -> Iterator[GraphSimulator]:
    with GraphSimulator(org, tls_dir=tmp_path / "tls", clock=clock.now) as server:
        yield server


@dataclass
class Running:
    feed: GraphChangeFeed
    source: GraphSource
    changes: asyncio.Queue[FolderChanged]
    task: asyncio.Task[None]
    states: dict[tuple[str, Folder], str] = field(default_factory=dict)

    async def next(self, within: float = 1.0) -> FolderChanged:
        return await asyncio.wait_for(self.changes.get(), within)

    def drain(self) -> list[FolderChanged]:
        out = []
        while not self.changes.empty():
            out.append(self.changes.get_nowait())
        return out

    async def sync(self, mailbox: str, folder: Folder) -> tuple[str, ...]:
        """What the daemon does on a notification: the normal incremental sync, from the stored state."""
        key = (mailbox, folder)
        if folder is Folder.CONTACTS:
            contacts = await self.source.sync_contacts(mailbox, self.states.get(key, ""))
            self.states[key] = contacts.sync_state
            return tuple(c.item_id for c in contacts.upserts) + contacts.deleted_item_ids
        calendar = await self.source.sync_calendar(mailbox, self.states.get(key, ""))
        self.states[key] = calendar.sync_state
        return calendar.changed_item_ids + calendar.deleted_item_ids


def exchange_config(sim: GraphSimulator, **overrides: Any) -> ExchangeConfig:
    settings: dict[str, Any] = {"poll_seconds": 30, "contacts_poll_seconds": 300}
    settings.update(overrides)
    return graph_config(sim, **settings)


@pytest.fixture
async def start(sim: GraphSimulator, clock: FakeClock) -> AsyncIterator[Any]:
    running: list[Running] = []

    async def start_feed(synced: bool = True, **overrides: Any) -> Running:
        exchange = exchange_config(sim, **overrides)
        source = GraphSource(exchange, SyncConfig(), clock=lambda: MAILBOXES_NOW, max_retry_wait_seconds=0.01)
        changes: asyncio.Queue[FolderChanged] = asyncio.Queue()
        feed = GraphChangeFeed(exchange, source, clock)
        run = Running(feed, source, changes, asyncio.get_running_loop().create_future())  # type: ignore[arg-type]
        if synced:
            for mailbox, folder in FOLDERS:
                await run.sync(mailbox, folder)
        run.task = asyncio.create_task(feed.run(FOLDERS, changes.put_nowait))
        running.append(run)
        await clock.wait_for_sleepers(1, within=30)  # started: subscribed, or the first poll round done
        return run

    yield start_feed
    for run in running:
        run.task.cancel()
        await asyncio.gather(run.task, return_exceptions=True)
        await run.source.close()


async def start_webhook(start: Any, **overrides: Any) -> Running:
    # The URL Graph dials is in the config before the feed binds its listener: a number up front.
    port = port_for_config()
    return await start(notification_url=f"http://127.0.0.1:{port}{HOOK}",
                       notification_listen=ListenAddress("127.0.0.1", port), **overrides)


# ---- webhooks


async def test_a_created_event_reaches_the_feed_within_a_second(start: Any, org: Organisation) -> None:
    run = await start_webhook(start)
    assert sorted((c.mailbox, c.folder) for c in run.drain()) == sorted(FOLDERS)  # one catch-up round each
    org.update_meeting("ny-call", subject="Offsite, new agenda")
    seen = {await run.next(), await run.next()}  # Alice's and Bob's copies
    assert {(c.folder, c.reason) for c in seen} == {(Folder.CALENDAR, "event")}
    health = run.feed.health()
    assert health.mode == "graph-webhook"
    assert (health.subscriptions_healthy, health.subscriptions_total) == (6, 6)
    assert health.fallback_folders == () and health.last_event_age_seconds == 0.0


async def test_a_notification_with_a_wrong_client_state_is_ignored_and_logged(
        start: Any, sim: GraphSimulator, caplog: pytest.LogCaptureFixture) -> None:
    run = await start_webhook(start)
    run.drain()
    sub = sim.subscriptions.subscriptions()[0]
    forged = {"value": [{"subscriptionId": sub.id, "clientState": "guessed", "changeType": "updated",
                         "resource": "Users/x/Events/y", "tenantId": sim.app.tenant_id}]}
    with caplog.at_level(logging.WARNING):
        answer = await asyncio.to_thread(requests.post, sub.notification_url, data=json.dumps(forged),
                                         headers={"Content-Type": "application/json"}, timeout=5)
    assert answer.status_code == 202
    assert run.changes.empty()
    assert "1 notifications ignored: clientState mismatch" in caplog.text
    assert "guessed" not in caplog.text and sub.client_state not in caplog.text


async def test_a_removed_subscription_is_created_anew_and_its_folder_synced(start: Any, sim: GraphSimulator,
                                                                             org: Organisation) -> None:
    run = await start_webhook(start)
    run.drain()
    gone = next(s for s in sim.subscriptions.subscriptions() if s.mailbox == BOB and s.folder == "contacts")
    sim.subscriptions.drop(gone.id)
    change = await run.next()
    assert change == FolderChanged(BOB, Folder.CONTACTS, "resubscribed")
    now_there = [s for s in sim.subscriptions.subscriptions() if s.mailbox == BOB and s.folder == "contacts"]
    assert len(now_there) == 1 and now_there[0].id != gone.id
    assert run.feed.health().resubscriptions == 1
    org.add_contact(BOB, ContactRecord("", "", "After the new subscription"))
    assert await run.next() == FolderChanged(BOB, Folder.CONTACTS, "event")


async def test_missed_means_a_delta_round_and_reauthorization_means_a_renewal(
        start: Any, sim: GraphSimulator, org: Organisation) -> None:
    run = await start_webhook(start)
    run.drain()
    subs = {(s.mailbox, s.folder): s for s in sim.subscriptions.subscriptions()}
    sim.subscriptions.send_lifecycle(subs[(CAROL, "calendar")].id, "missed")
    assert await run.next() == FolderChanged(CAROL, Folder.CALENDAR, "missed")
    before = org.counters.get("subscriptions.renew")
    sim.subscriptions.send_lifecycle(subs[(ALICE, "contacts")].id, "reauthorizationRequired")
    for _ in range(200):  # the renewal is a request the feed makes on its own; wait for it, bounded
        if org.counters.get("subscriptions.renew") > before:
            break
        await asyncio.sleep(0.02)
    assert org.counters.get("subscriptions.renew", ALICE) == before + 1
    assert run.changes.empty()


async def test_subscriptions_are_renewed_before_they_expire(start: Any, sim: GraphSimulator, clock: FakeClock,
                                                           org: Organisation) -> None:
    run = await start_webhook(start)
    run.drain()
    first = {s.id: s.expires for s in sim.subscriptions.subscriptions()}
    due = min(renew_at(s) for s in run.feed.subscriber.subs.values())  # type: ignore[union-attr]
    assert due - clock.now() > timedelta(days=4)
    clock.set(due - timedelta(seconds=1))
    await asyncio.sleep(0.05)
    assert org.counters.get("subscriptions.renew") == 0
    clock.set(due)
    for _ in range(500):
        if org.counters.get("subscriptions.renew") == len(FOLDERS):
            break
        await asyncio.sleep(0.02)
    assert org.counters.get("subscriptions.renew") == len(FOLDERS)
    after = {s.id: s.expires for s in sim.subscriptions.subscriptions()}
    assert after.keys() == first.keys() and all(after[i] > first[i] for i in first)
    assert run.feed.health().subscriptions_healthy == len(FOLDERS)


async def test_without_a_working_url_every_folder_is_polled_and_says_so(start: Any, org: Organisation,
                                                                        clock: FakeClock) -> None:
    # a proxy that forwards nowhere: Graph's validation POST never reaches the receiver
    with refused_port() as nowhere:
        run = await start(notification_url=f"http://127.0.0.1:{nowhere}{HOOK}",
                          notification_listen=ListenAddress("127.0.0.1", 0))
    health = run.feed.health()
    assert health.mode == "graph-webhook" and health.subscriptions_healthy == 0
    assert len(health.fallback_folders) == len(FOLDERS) and f"{ALICE}/calendar" in health.fallback_folders
    org.update_meeting("ny-call", subject="Seen by polling")
    clock.advance(30)
    seen = {await run.next(), await run.next()}
    assert {(c.folder, c.reason) for c in seen} == {(Folder.CALENDAR, "poll")}


async def test_a_listen_address_in_use_means_polling_until_it_is_free(start: Any, org: Organisation,
                                                                       clock: FakeClock, sim: GraphSimulator) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = int(blocker.getsockname()[1])
    try:
        run = await start(notification_url=f"http://127.0.0.1:{port}{HOOK}",
                          notification_listen=ListenAddress("127.0.0.1", port))
        assert len(run.feed.health().fallback_folders) == len(FOLDERS)
        org.update_meeting("ny-call", subject="Seen by polling")
        clock.advance(30)
        assert {await run.next(), await run.next()} == {FolderChanged(ALICE, Folder.CALENDAR, "poll"),
                                                         FolderChanged(BOB, Folder.CALENDAR, "poll")}
    finally:
        blocker.close()
    clock.advance(30)  # a minute after the first try: the address is free now
    resubscribed = {await run.next() for _ in FOLDERS}
    assert {(c.mailbox, c.folder) for c in resubscribed} == set(FOLDERS)
    assert {c.reason for c in resubscribed} == {"resubscribed"}
    assert run.feed.health().fallback_folders == () and len(sim.subscriptions.subscriptions()) == len(FOLDERS)


async def test_stopping_deletes_the_subscriptions_and_a_new_start_sweeps_leftovers(
        start: Any, sim: GraphSimulator) -> None:
    run = await start_webhook(start)
    assert len(sim.subscriptions.subscriptions()) == len(FOLDERS)
    run.task.cancel()
    await asyncio.gather(run.task, return_exceptions=True)
    assert sim.subscriptions.subscriptions() == []
    url = run.feed.subscriber._url  # type: ignore[union-attr]
    port = int(url.split(":")[2].split("/")[0])
    # a crash leaves subscriptions behind: make some with the same URL (their client states are lost)
    crashed = await start(notification_url=url, notification_listen=ListenAddress("127.0.0.1", port))
    crashed.task.cancel()
    assert crashed.feed.subscriber is not None
    crashed.feed.subscriber.subs.clear()  # as if the process died: nothing is deleted at stop
    await asyncio.gather(crashed.task, return_exceptions=True)
    assert len(sim.subscriptions.subscriptions()) == len(FOLDERS)
    await start(notification_url=url, notification_listen=ListenAddress("127.0.0.1", port))
    assert len(sim.subscriptions.subscriptions()) == len(FOLDERS)  # the old ones were swept


# ---- polling


async def test_polling_finds_a_change_within_poll_seconds(start: Any, org: Organisation, clock: FakeClock) -> None:
    run = await start()
    assert run.drain() == []  # every folder synced, nothing changed
    org.update_meeting("ny-call", subject="Seen by polling")
    clock.advance(29)
    await asyncio.sleep(0.05)
    assert run.changes.empty()
    clock.advance(1)
    seen = {await run.next(), await run.next()}
    assert seen == {FolderChanged(ALICE, Folder.CALENDAR, "poll"), FolderChanged(BOB, Folder.CALENDAR, "poll")}
    health = run.feed.health()
    assert health.mode == "graph-polling" and health.last_event_age_seconds == 0.0
    assert "calendars every 30 s, contacts every 300 s" in health.detail


async def test_a_probe_leaves_the_change_for_the_sync(start: Any, org: Organisation, clock: FakeClock) -> None:
    run = await start()
    contact = org.add_contact(CAROL, ContactRecord("", "", "Probed, not consumed"))
    clock.advance(300)
    assert await run.next() == FolderChanged(CAROL, Folder.CONTACTS, "poll")
    clock.advance(300)  # probed again before the sync ran: still there
    assert await run.next() == FolderChanged(CAROL, Folder.CONTACTS, "poll")
    assert contact.item_id in await run.sync(CAROL, Folder.CONTACTS)
    clock.advance(300)
    await clock.wait_for_sleepers(1)
    await asyncio.sleep(0.05)
    assert run.changes.empty()  # synced: the probe now sees the new link, and nothing new


async def test_contacts_are_polled_less_often(start: Any, org: Organisation, clock: FakeClock) -> None:
    run = await start()
    org.add_contact(ALICE, ContactRecord("", "", "Slow lane"))
    for _ in range(9):
        clock.advance(30)
        await clock.wait_for_sleepers(1)
    assert run.changes.empty()
    clock.advance(30)
    assert await run.next() == FolderChanged(ALICE, Folder.CONTACTS, "poll")


async def test_a_throttled_mailbox_waits_while_the_others_are_probed(start: Any, org: Organisation,
                                                                     clock: FakeClock) -> None:
    run = await start()
    org.inject_fault(Fault("server_busy", back_off_ms=120_000), operation="calendarView.delta", mailbox=ALICE)
    org.update_meeting("ny-call", subject="Both copies change")
    clock.advance(30)
    assert await run.next() == FolderChanged(BOB, Folder.CALENDAR, "poll")
    assert run.feed.poller.schedule.throttled(clock.now()) == [ALICE]
    probes_before = org.counters.get("calendarView.delta", ALICE)
    clock.advance(60)
    assert await run.next() == FolderChanged(BOB, Folder.CALENDAR, "poll")
    assert org.counters.get("calendarView.delta", ALICE) == probes_before  # held back
    clock.advance(60)  # the Retry-After has passed
    assert {await run.next(), await run.next()} == {FolderChanged(ALICE, Folder.CALENDAR, "poll"),
                                                     FolderChanged(BOB, Folder.CALENDAR, "poll")}


async def test_a_folder_that_cannot_be_probed_is_reported_once(start: Any, org: Organisation, clock: FakeClock,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    run = await start()
    org.inject_fault(Fault("access_denied"), operation="calendarView.delta", mailbox=CAROL, times=-1)
    with caplog.at_level(logging.INFO, logger="pbxsync.exchange.graph.polling"):
        for _ in range(3):
            clock.advance(30)
            await clock.wait_for_sleepers(1)
            await until(lambda: run.feed.poller.rounds >= 2)
        assert caplog.text.count("cannot be probed") == 1
        assert "carol@example.com calendar: HTTP 403 ErrorAccessDenied" in caplog.text
        assert "1 folders cannot be probed" in run.feed.health().detail
        org.clear_faults()
        rounds = run.feed.poller.rounds
        clock.advance(30)
        await until(lambda: run.feed.poller.rounds > rounds)
        assert "carol@example.com calendar can be probed again" in caplog.text
    assert run.changes.empty()


async def until(condition: Any, within: float = 5.0) -> None:
    """Let the loop run until `condition()` holds (bounded; the feed's requests run in threads)."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_a_folder_never_synced_is_asked_for_instead_of_probed(start: Any, clock: FakeClock) -> None:
    run = await start(synced=False)
    assert sorted((c.mailbox, c.folder, c.reason) for c in run.drain()) == sorted(
        (m, f, "missed") for m, f in FOLDERS)
    assert f"{len(FOLDERS)} folders wait for their first sync" in run.feed.health().detail
    clock.advance(30)
    await clock.wait_for_sleepers(1)
    assert run.changes.empty()  # not again before COLD_RETRY_SECONDS
    await run.sync(ALICE, Folder.CALENDAR)
    clock.advance(COLD_RETRY_SECONDS)
    await clock.wait_for_sleepers(1)
    again = {(c.mailbox, c.folder) for c in run.drain()}
    assert (ALICE, Folder.CALENDAR) not in again and (BOB, Folder.CALENDAR) in again


async def test_a_gone_delta_state_asks_for_a_sync(start: Any, sim: GraphSimulator, clock: FakeClock) -> None:
    run = await start()
    sim.forget_delta_tokens()
    clock.advance(30)
    seen = {await run.next() for _ in range(3)}
    assert seen == {FolderChanged(m, Folder.CALENDAR, "missed") for m in (ALICE, BOB, CAROL)}


async def test_one_batch_call_probes_every_due_folder(start: Any, org: Organisation, clock: FakeClock) -> None:
    await start()
    org.counters.reset()
    clock.advance(30)
    await clock.wait_for_sleepers(1)
    for _ in range(100):
        if org.counters.get("$batch"):
            break
        await asyncio.sleep(0.01)
    assert org.counters.get("$batch") == 1 and org.counters.get("calendarView.delta") == 3


# ---- the factory


def test_the_factory_makes_a_feed_only_for_graph_with_something_to_do(sim: GraphSimulator, clock: FakeClock) -> None:
    exchange = exchange_config(sim)
    source = GraphSource(exchange, SyncConfig())
    assert isinstance(make_graph_feed(Config(exchange=exchange), source, clock), GraphChangeFeed)
    assert make_graph_feed(Config(exchange=ExchangeConfig(backend="ews")), source, clock) is None
    off = exchange_config(sim, poll_seconds=0, contacts_poll_seconds=0)
    assert make_graph_feed(Config(exchange=off), source, clock) is None
    hook = exchange_config(sim, poll_seconds=0, contacts_poll_seconds=0, notification_url="https://pbx.example.com/h")
    feed = make_graph_feed(Config(exchange=hook), source, clock)
    assert isinstance(feed, GraphChangeFeed) and feed.mode == "graph-webhook"
