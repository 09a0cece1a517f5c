"""Issue 16, performance: with write-back on, the calendar sync's own reads bring the bodies (EWS: the
window's GetItem asks for item:Body; Graph: the calendarView delta rows carry them), so the write-back step
writes without a read of its own (sync.sources.kept_bodies). Safety stays with the change key: a body that
went stale between the sync and the write conflicts, is read again, and the organizer's newer edit is kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.writeback.step import write_back
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.ews_backend import EWS
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.graph_backend import GRAPH
from pbxsync.sync.sources.kept_bodies import KeptBodies
from tests.support.write_back import AGENDA, ALICE, BOB, NOW, WriteBackWorld, write_back_world

READS = {"ews": "GetItem", "graph": "events"}  # the simulators' counters of body reads
WRITES = {"ews": "UpdateItem", "graph": "events.patch"}


@pytest.fixture(params=["ews", "graph"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WriteBackWorld]:
    async with write_back_world(request.param, tmp_path) as world:
        yield world


def kept_bodies(world: WriteBackWorld) -> KeptBodies:
    assert isinstance(world.source, EwsSource | GraphSource) and world.source.kept_bodies is not None
    return world.source.kept_bodies


async def sync_and_book(world: WriteBackWorld) -> None:
    await SyncEngine(world.store, world.source, world.config).sync_all(NOW)
    await update_bookings(world.store, world.config, NOW)


async def test_the_write_back_step_makes_no_read_of_its_own(world: WriteBackWorld) -> None:
    await sync_and_book(world)
    backend = world.config.exchange.backend
    reads, writes = world.org.counters.get(READS[backend]), world.org.counters.get(WRITES[backend])
    summary = await write_back(world.store, world.config, world.writer, NOW)
    assert summary.writes == 2 and summary.failed == 0 and summary.conflicts == 0
    assert world.org.counters.get(READS[backend]) == reads  # the bodies came with the sync's reads
    assert world.org.counters.get(WRITES[backend]) == writes + 2
    assert "PIN: " in (await world.body()).content


async def test_an_edit_after_the_sync_conflicts_and_the_newer_edit_is_kept(world: WriteBackWorld) -> None:
    await sync_and_book(world)
    copy = world.organizer_copy()
    edited = copy.body.replace("Bring numbers", "Bring the Q3 numbers")
    world.org.update_item_if(ALICE, copy.item_id, None, body=edited)  # the kept body and change key are stale now
    summary = await write_back(world.store, world.config, world.writer, NOW)
    assert summary.conflicts == 1 and summary.failed == 0 and summary.writes == 2
    content = (await world.body()).content
    assert "Bring the Q3 numbers" in content and "PIN: " in content
    assert len(world.org.writes.log(ALICE)) == 1


async def test_only_the_organizers_own_pbx_meetings_are_kept_and_each_once(world: WriteBackWorld) -> None:
    kept = kept_bodies(world)
    await SyncEngine(world.store, world.source, world.config).sync_all(NOW)
    standup, later = world.organizer_copy("standup"), world.organizer_copy("later")
    bob_standup = next(m for box, m in world.org.copies("standup") if box == BOB)
    assert kept.take(BOB, [bob_standup.item_id]) == {}  # Bob is an attendee there: never written
    [alice_body] = kept.take(ALICE, [standup.item_id]).values()
    assert (alice_body.content, alice_body.change_key, alice_body.is_html) == (AGENDA, standup.change_key, True)
    assert kept.take(ALICE, [standup.item_id]) == {}  # handed out once
    await world.source.sync_calendar(BOB, "")
    assert kept.take(BOB, [later.item_id]) == {}  # a new sync of the mailbox drops the last pass's bodies


async def test_bodies_are_kept_only_when_write_back_is_on(world: WriteBackWorld) -> None:
    backend = EWS if world.config.exchange.backend == "ews" else GRAPH
    on = backend.make_source(world.config)
    off = backend.make_source(replace(world.config, meetings=replace(world.config.meetings, write_back=False)))
    try:
        assert isinstance(on, EwsSource | GraphSource) and isinstance(off, EwsSource | GraphSource)
        assert on.kept_bodies is not None and off.kept_bodies is None
        if isinstance(on, EwsSource) and isinstance(off, EwsSource):  # Graph's delta rows carry the body anyway
            assert "body" in on.occurrence_fields and "body" not in off.occurrence_fields
    finally:
        await on.close()
        await off.close()
