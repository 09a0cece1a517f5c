"""Issue 16, performance: with write-back on, the EWS calendar sync's own GetItem also reads the bodies, so
the write-back step writes without a GetItem of its own (sync.sources.ews_bodies). Safety stays with the
ChangeKey: a body that went stale between the sync and the write conflicts, is read again, and the
organizer's newer edit is kept."""

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
from tests.support.write_back import AGENDA, ALICE, BOB, NOW, WriteBackWorld, open_world, organisation, serving


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[WriteBackWorld]:
    org = organisation()
    with serving("ews", org, tmp_path) as config:
        w = await open_world(org, config)
        try:
            yield w
        finally:
            await w.close()


async def sync_and_book(world: WriteBackWorld) -> None:
    await SyncEngine(world.store, world.source, world.config).sync_all(NOW)
    await update_bookings(world.store, world.config, NOW)


async def test_the_write_back_step_makes_no_get_item_of_its_own(world: WriteBackWorld) -> None:
    await sync_and_book(world)
    reads, writes = world.org.counters.get("GetItem"), world.org.counters.get("UpdateItem")
    summary = await write_back(world.store, world.config, world.writer, NOW)
    assert summary.writes == 2 and summary.failed == 0 and summary.conflicts == 0
    assert world.org.counters.get("GetItem") == reads  # the bodies came with the sync's GetItem
    assert world.org.counters.get("UpdateItem") == writes + 2  # one per organizer mailbox
    assert "PIN: " in (await world.body()).content


async def test_an_edit_after_the_sync_conflicts_and_the_newer_edit_is_kept(world: WriteBackWorld) -> None:
    await sync_and_book(world)
    copy = world.organizer_copy()
    edited = copy.body.replace("Bring numbers", "Bring the Q3 numbers")
    world.org.update_item_if(ALICE, copy.item_id, None, body=edited)  # the kept body and ChangeKey are stale now
    summary = await write_back(world.store, world.config, world.writer, NOW)
    assert summary.conflicts == 1 and summary.failed == 0 and summary.writes == 2
    content = (await world.body()).content
    assert "Bring the Q3 numbers" in content and "PIN: " in content
    assert len(world.org.writes.log(ALICE)) == 1


async def test_only_the_organizers_own_pbx_meetings_are_kept_and_each_once(world: WriteBackWorld) -> None:
    assert isinstance(world.source, EwsSource) and world.source.kept_bodies is not None
    kept = world.source.kept_bodies
    await SyncEngine(world.store, world.source, world.config).sync_all(NOW)
    standup, later = world.organizer_copy("standup"), world.organizer_copy("later")
    bob_standup = next(m for box, m in world.org.copies("standup") if box == BOB)
    assert kept.take(BOB, [bob_standup.item_id]) == {}  # Bob is an attendee there: never written
    [alice_body] = kept.take(ALICE, [standup.item_id]).values()
    assert (alice_body.content, alice_body.change_key, alice_body.is_html) == (AGENDA, standup.change_key, True)
    assert kept.take(ALICE, [standup.item_id]) == {}  # handed out once
    await world.source.sync_calendar(BOB, "")
    assert kept.take(BOB, [later.item_id]) == {}  # a new sync of the mailbox drops the last pass's bodies


async def test_bodies_are_read_with_the_calendar_only_when_write_back_is_on(world: WriteBackWorld) -> None:
    on = EWS.make_source(world.config)
    off = EWS.make_source(replace(world.config, meetings=replace(world.config.meetings, write_back=False)))
    assert isinstance(on, EwsSource) and isinstance(off, EwsSource)
    assert on.kept_bodies is not None and "body" in on.occurrence_fields
    assert off.kept_bodies is None and "body" not in off.occurrence_fields
