"""The EWS streaming feed (exchangelib, unmodified, plus sync.notify.ews_wire) against the EWS simulator.

Where retries and renewals matter the feed runs on a FakeClock (`parked` shows what it waits for);
the HTTP is real. Notifications are awaited as events (`Changes.next`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin.daemon.clock import FakeClock, SystemClock
from pbxsync.sync.config import ExchangeConfig
from pbxsync.sync.model import Folder
from pbxsync.sync.notify.base import FeedClock, FolderChanged
from pbxsync.sync.notify.ews_plan import StreamingPolicy
from pbxsync.sync.notify.ews_streaming import EwsStreamingFeed
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Fault, MeetingRecord, Organisation
from pbxsync.sync.sources.ews import EwsSource
from tests.support.waiting import until

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
CAL, CON = Folder.CALENDAR, Folder.CONTACTS
EVERY = [(m, f) for m in (ALICE, BOB, CAROL) for f in (CAL, CON)]


@pytest.fixture
def org() -> Organisation:
    return Organisation.from_dict({"domain": "example.com", "users": [
        {"email": ALICE, "name": "Alice", "password": "a"}, {"email": BOB, "name": "Bob", "password": "b"},
        {"email": CAROL, "name": "Carol", "password": "c"},
        {"email": "svc-pbx@example.com", "name": "PBX", "password": "svc-pw", "can_impersonate": True}]})


@pytest.fixture
def sim(org: Organisation) -> Iterator[EwsSimulator]:
    with EwsSimulator(org) as server:
        server.streaming.keepalive_seconds = 0.2
        yield server


def ews_source(sim: EwsSimulator, max_connections: int = 4) -> EwsSource:
    return EwsSource(ExchangeConfig(server=sim.ews_url, auth="basic", username="svc-pbx@example.com",
                                    password=Secret("svc-pw"), max_connections=max_connections), [], "DE")


class Changes:
    """What the feed notified, awaitable one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[FolderChanged] = asyncio.Queue()
        self.all: list[FolderChanged] = []

    def __call__(self, change: FolderChanged) -> None:
        self.all.append(change)
        self.queue.put_nowait(change)

    async def next(self, within: float = 10.0) -> FolderChanged:
        return await asyncio.wait_for(self.queue.get(), within)

    async def take(self, count: int, within: float = 10.0) -> set[tuple[str, Folder, str]]:
        return {(c.mailbox, c.folder, c.reason) for c in [await self.next(within) for _ in range(count)]}

    def quiet(self) -> bool:
        return self.queue.empty()


@dataclass
class Running:
    feed: EwsStreamingFeed
    task: asyncio.Task[None]
    changes: Changes
    source: EwsSource


@contextlib.asynccontextmanager
async def running_feed(sim: EwsSimulator, folders: list[tuple[str, Folder]] = EVERY,
                       policy: StreamingPolicy | None = None, clock: FeedClock | None = None,
                       source: EwsSource | None = None) -> AsyncIterator[Running]:
    source = source or ews_source(sim)
    feed = EwsStreamingFeed(source, clock or SystemClock(), policy)
    changes = Changes()
    task = asyncio.get_running_loop().create_task(feed.run(folders, changes))
    try:
        yield Running(feed, task, changes, source)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await source.close()


async def parked(clock: FakeClock, seconds: float) -> None:
    """Until the feed's next wake-up on `clock` is `seconds` away (it decided to wait that long)."""
    await until(lambda: clock.next_wakeup() == clock.now() + timedelta(seconds=seconds))


def streams(sim: EwsSimulator) -> list[tuple[str, ...]]:
    return [r.subscription_ids for r in sim.streaming.requests if r.operation == "GetStreamingEvents"]


async def test_every_folder_is_synced_once_at_start_then_each_change_names_its_folder(
        sim: EwsSimulator, org: Organisation) -> None:
    async with running_feed(sim) as run:
        assert await run.changes.take(6) == {(m, f, "resubscribed") for m, f in EVERY}
        await until(lambda: run.feed.health().subscriptions_healthy == 3)
        contact = org.add_contact(BOB, ContactRecord("", "", "New Person"))
        assert await run.changes.take(1) == {(BOB, CON, "event")}
        org.add_meeting(MeetingRecord("", "", "m-1", "Sync", datetime(2026, 12, 1, 9, tzinfo=UTC),
                                      datetime(2026, 12, 1, 10, tzinfo=UTC), "UTC", organizer_email=ALICE), [ALICE])
        assert await run.changes.take(1) == {(ALICE, CAL, "event")}
        org.delete_contact(BOB, contact.item_id)  # MovedEvent to Deleted Items: its old folder counts
        assert await run.changes.take(1) == {(BOB, CON, "event")}
        sim.streaming.deletes = "deleted"
        org.delete_meeting(ALICE, org.meetings(ALICE)[0].item_id)
        assert await run.changes.take(1) == {(ALICE, CAL, "event")}
        health = run.feed.health()
        assert (health.mode, health.subscriptions_total, health.fallback_folders) == ("ews-streaming", 3, ())
        assert health.last_event_age_seconds is not None and health.last_event_age_seconds < 10


async def test_contacts_in_sub_folders_are_heard_and_a_new_sub_folder_is_watched_too(
        sim: EwsSimulator, org: Organisation) -> None:
    suppliers = org.add_contact_folder(ALICE, "Suppliers")
    async with running_feed(sim, [(ALICE, CON)]) as run:
        assert await run.changes.take(1) == {(ALICE, CON, "resubscribed")}
        await until(lambda: run.feed.health().subscriptions_healthy == 1)
        org.add_contact(ALICE, ContactRecord("", "", "In a sub-folder", folder=suppliers.folder_id))
        assert await run.changes.take(1) == {(ALICE, CON, "event")}
        subscribes = sum(r.operation == "Subscribe" for r in sim.streaming.requests)
        berlin = org.add_contact_folder(ALICE, "Berlin", parent_id=suppliers.folder_id)  # a folder event
        assert (await run.changes.next()).reason == "event"
        assert (await run.changes.next()).reason == "resubscribed"  # subscribed anew, to the new folder too
        assert sum(r.operation == "Subscribe" for r in sim.streaming.requests) == subscribes + 1
        await until(lambda: run.feed.health().subscriptions_healthy == 1)
        org.add_contact(ALICE, ContactRecord("", "", "In the new folder", folder=berlin.folder_id))
        assert await run.changes.take(1) == {(ALICE, CON, "event")}
        assert run.feed.health().resubscriptions == 0  # a wider subscription, not a lost one
    await until(lambda: len(sim.streaming.subscriptions(ALICE)) == 0)  # the old one was unsubscribed too


async def test_a_mailbox_with_one_synced_folder_hears_only_that_folder(sim: EwsSimulator, org: Organisation) -> None:
    async with running_feed(sim, [(ALICE, CAL)]) as run:
        assert await run.changes.take(1) == {(ALICE, CAL, "resubscribed")}
        await until(lambda: run.feed.health().subscriptions_healthy == 1)
        org.add_contact(ALICE, ContactRecord("", "", "Not watched"))
        org.add_meeting(MeetingRecord("", "", "m-2", "Watched", datetime(2026, 12, 2, 9, tzinfo=UTC),
                                      datetime(2026, 12, 2, 10, tzinfo=UTC), "UTC", organizer_email=ALICE), [ALICE])
        assert await run.changes.take(1) == {(ALICE, CAL, "event")}
        assert run.changes.quiet()


async def test_groups_share_one_connection_each_with_the_anchor_and_its_affinity_cookie(sim: EwsSimulator) -> None:
    async with running_feed(sim, policy=StreamingPolicy(max_per_connection=2)) as run:
        await until(lambda: run.feed.health().subscriptions_healthy == 3)
    subscribes = [r for r in sim.streaming.requests if r.operation == "Subscribe"]
    by_principal = {r.principal: r for r in subscribes}
    assert by_principal[ALICE].anchor == by_principal[BOB].anchor == ALICE  # group 1: alice + bob
    assert by_principal[CAROL].anchor == CAROL  # group 2: carol alone
    assert all(r.prefer_affinity for r in sim.streaming.requests)
    assert by_principal[ALICE].cookie == ""  # the anchor's Subscribe asks for the cookie...
    assert by_principal[BOB].cookie != ""  # ...and the group's later requests carry it
    first_streams = {r.anchor: r for r in reversed(sim.streaming.requests) if r.operation == "GetStreamingEvents"}
    assert sorted(len(r.subscription_ids) for r in first_streams.values()) == [1, 2]
    assert first_streams[ALICE].cookie == by_principal[BOB].cookie
    assert first_streams[ALICE].principal == ALICE  # the connection impersonates the anchor


async def test_connections_closed_by_exchange_are_reopened_and_no_event_is_lost(
        sim: EwsSimulator, org: Organisation) -> None:
    sim.streaming.minute_seconds = 0.3  # ConnectionTimeout 1 = 0.3 s: Exchange closes often
    async with running_feed(sim, [(ALICE, CON)], StreamingPolicy(connection_minutes=1)) as run:
        await run.changes.take(1)
        for index in range(15):
            org.add_contact(ALICE, ContactRecord("", "", f"Person {index}"))
            await asyncio.sleep(0.05)  # spread the changes over several connections (pacing, not a wait)
        changes = [await run.changes.next() for _ in range(15)]
        assert {(c.folder, c.reason) for c in changes} == {(CON, "event")}
        assert len(streams(sim)) >= 3
        assert run.feed.health().resubscriptions == 0  # a closed connection keeps its subscriptions


async def test_the_feed_renews_its_connection_before_exchanges_timeout(sim: EwsSimulator) -> None:
    clock = FakeClock()
    policy = StreamingPolicy(connection_minutes=10, renew_before_seconds=30)
    async with running_feed(sim, [(ALICE, CAL)], policy, clock) as run:
        await run.changes.take(1)
        await until(lambda: len(streams(sim)) == 1 and run.feed.health().subscriptions_healthy == 1)
        await parked(clock, 9 * 60 + 30)
        clock.advance(9 * 60 + 30)  # Exchange would close at 10 minutes; the feed moves on at 9.5
        await until(lambda: len(streams(sim)) == 2)
        assert streams(sim)[0] == streams(sim)[1]  # the same subscription, on a fresh connection
        await until(lambda: sim.streaming.open_streams() == 1)


async def test_a_dropped_subscription_is_recreated_and_its_folders_synced_once(
        sim: EwsSimulator, org: Organisation) -> None:
    clock = FakeClock()
    async with running_feed(sim, clock=clock) as run:
        await run.changes.take(6)
        await until(lambda: run.feed.health().subscriptions_healthy == 3)
        assert sim.streaming.drop(BOB) == 1
        await parked(clock, 1)  # the feed heard of the loss; the re-subscription waits one back-off second
        clock.advance(1)
        assert await run.changes.take(2) == {(BOB, CAL, "resubscribed"), (BOB, CON, "resubscribed")}
        await until(lambda: run.feed.health().subscriptions_healthy == 3)
        assert run.feed.health().resubscriptions == 1
        org.add_contact(BOB, ContactRecord("", "", "After the drop"))
        assert await run.changes.take(1) == {(BOB, CON, "event")}
        assert run.changes.quiet()  # alice and carol were never re-synced


async def test_subscriptions_expired_on_exchange_are_recreated(sim: EwsSimulator) -> None:
    exchange_time = [0.0]
    sim.streaming.clock = lambda: exchange_time[0]  # Exchange's clock, moved by hand
    sim.streaming.minute_seconds = 1.0
    clock = FakeClock()
    async with running_feed(sim, [(ALICE, CAL)], StreamingPolicy(connection_minutes=1), clock) as run:
        await run.changes.take(1)
        await until(lambda: run.feed.health().subscriptions_healthy == 1)
        sim.org.inject_fault(Fault("http_status", status=503), operation="GetStreamingEvents", times=-1)
        exchange_time[0] += 1.5  # Exchange closes the connection (timeout); reconnecting fails for now
        await until(lambda: run.feed.health().subscriptions_healthy == 0)
        exchange_time[0] += 31 * 60  # meanwhile Exchange forgets the subscription (~30 min after its connection)
        sim.org.clear_faults()
        await parked(clock, 1)
        clock.advance(1)  # the connection's back-off; then Exchange says the subscription is not found
        await parked(clock, 1)  # Exchange said the subscription is gone; it is re-created after a second
        clock.advance(1)
        assert await run.changes.take(1) == {(ALICE, CAL, "resubscribed")}
        await until(lambda: run.feed.health().subscriptions_healthy == 1)
        assert run.feed.health().resubscriptions == 1


async def test_after_a_long_outage_the_feed_recreates_its_subscriptions_itself(sim: EwsSimulator) -> None:
    exchange_time = [0.0]
    sim.streaming.clock = lambda: exchange_time[0]
    sim.streaming.minute_seconds = 1.0
    clock = FakeClock()
    policy = StreamingPolicy(connection_minutes=1, subscription_lifetime_seconds=25 * 60, max_failures=3,
                             fallback_retry_seconds=300)
    async with running_feed(sim, [(ALICE, CAL)], policy, clock) as run:
        await run.changes.take(1)
        await until(lambda: run.feed.health().subscriptions_healthy == 1)
        sim.org.inject_fault(Fault("http_status", status=503), operation="GetStreamingEvents", times=-1)
        exchange_time[0] += 1.5  # the connection times out; new ones fail from now on
        subscribes = sum(r.operation == "Subscribe" for r in sim.streaming.requests)
        for back_off in (1, 2, 300, 300, 300, 300):  # 1203 s without a connection: subscriptions still alive
            await parked(clock, back_off)
            clock.advance(back_off)
        await parked(clock, 300)
        assert run.feed.health().fallback_folders == ("alice@example.com/calendar",)
        assert run.changes.quiet()
        clock.advance(300)  # 1503 s: past a subscription's life; Exchange never said so, the feed knows
        assert await run.changes.take(1) == {(ALICE, CAL, "resubscribed")}
        assert sum(r.operation == "Subscribe" for r in sim.streaming.requests) == subscribes + 1
        await parked(clock, 300)  # the fresh subscription's connection failed too
        sim.org.clear_faults()
        clock.advance(300)
        await until(lambda: run.feed.health().fallback_folders == () and run.feed.health().subscriptions_healthy == 1)


async def test_too_many_subscriptions_fall_back_to_polling_with_a_clear_message(sim: EwsSimulator) -> None:
    sim.streaming.max_subscriptions = 0  # EWSMaxSubscriptions reached
    clock = FakeClock()
    policy = StreamingPolicy(max_failures=3, fallback_retry_seconds=300)
    async with running_feed(sim, [(ALICE, CAL), (ALICE, CON)], policy, clock) as run:
        for back_off in (1, 2):
            await parked(clock, back_off)
            clock.advance(back_off)
        await until(lambda: run.feed.health().fallback_folders != ())
        health = run.feed.health()
        assert health.fallback_folders == ("alice@example.com/calendar", "alice@example.com/contacts")
        assert "ErrorExceededSubscriptionCount" in health.detail and "EWSMaxSubscriptions" in health.detail
        assert health.subscriptions_healthy == 0 and run.changes.quiet()
        sim.streaming.max_subscriptions = 5000  # the admin raised the limit
        await parked(clock, 300)
        clock.advance(300)
        assert await run.changes.take(2) == {(ALICE, CAL, "resubscribed"), (ALICE, CON, "resubscribed")}
        await until(lambda: run.feed.health().fallback_folders == () and run.feed.health().subscriptions_healthy == 1)


async def test_too_many_streaming_connections_fall_back_with_a_clear_message(sim: EwsSimulator) -> None:
    sim.streaming.hanging_connection_limit = 0
    clock = FakeClock()
    async with running_feed(sim, [(ALICE, CAL)], StreamingPolicy(max_failures=3), clock) as run:
        await run.changes.take(1)  # subscribing works; the connection does not
        for back_off in (1, 2):
            await parked(clock, back_off)
            assert "HangingConnectionLimit" in run.feed.health().detail
            clock.advance(back_off)
        await until(lambda: run.feed.health().fallback_folders == ("alice@example.com/calendar",))
        assert "ErrorExceededConnectionCount" in run.feed.health().detail


async def test_stopping_the_feed_ends_its_stream_at_once_and_unsubscribes(sim: EwsSimulator) -> None:
    sim.streaming.keepalive_seconds = 30.0  # nothing on the wire: the client must cut the wait itself
    async with running_feed(sim, [(ALICE, CAL), (BOB, CAL)]) as run:
        await until(lambda: run.feed.health().subscriptions_healthy == 2 and sim.streaming.open_streams() == 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task
        assert loop.time() - started < 0.5
    await until(lambda: sim.streaming.subscriptions() == [])  # best-effort Unsubscribe in the background


async def test_a_held_stream_never_takes_the_syncs_connections(sim: EwsSimulator, org: Organisation) -> None:
    source = ews_source(sim, max_connections=1)  # the sync's whole pool: one session
    async with running_feed(sim, [(ALICE, CON), (BOB, CON)], source=source) as run:
        await until(lambda: sim.streaming.open_streams() == 1)
        changes = await asyncio.wait_for(source.sync_contacts(ALICE, ""), 10)
        assert changes.complete
        window = await asyncio.wait_for(source.calendar_window(BOB, datetime(2026, 1, 1, tzinfo=UTC),
                                                               datetime(2026, 2, 1, tzinfo=UTC)), 10)
        assert window.occurrences == ()
        assert sim.streaming.open_streams() == 1
        assert run.feed.health().subscriptions_healthy == 2
