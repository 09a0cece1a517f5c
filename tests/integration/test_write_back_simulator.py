"""The simulators accept calendar writes as Exchange does (issue 16): EWS UpdateItem over real exchangelib,
Graph PATCH with If-Match; a stored write is a normal change with a new change key. Also pins the
exchangelib defect the EWS writer works around (sync.sources.ews_writer.PerItemUpdateItem)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from exchangelib import CalendarItem, HTMLBody
from exchangelib import errors as ews_errors
from exchangelib.items import NEVER_OVERWRITE, SAVE_ONLY, SEND_TO_NONE

from pbxsync.sync.errors import WriteConflictError, WriteDeniedError
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.ews_writer import PerItemUpdateItem
from pbxsync.sync.sources.writer import ItemBody
from tests.support.write_back import AGENDA, ALICE, BOB, WriteBackWorld, organisation, serving, write_back_world


@pytest.fixture(params=["ews", "graph"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WriteBackWorld]:
    async with write_back_world(request.param, tmp_path) as world:
        yield world


async def test_a_write_with_the_current_change_key_is_a_normal_change(world: WriteBackWorld) -> None:
    before = await world.body()
    assert before.content == AGENDA
    first = await world.source.sync_calendar(ALICE, "")
    [new_key] = await world.writer.write_bodies(ALICE, [ItemBody(before.item_id, before.change_key, "<p>new</p>",
                                                                 True)], notify=False)
    assert isinstance(new_key, str) and new_key not in ("", before.change_key)
    assert world.organizer_copy().change_key == new_key and world.organizer_copy().body == "<p>new</p>"
    again = await world.source.sync_calendar(ALICE, first.sync_state)  # the change shows up in the folder sync
    assert before.item_id in again.changed_item_ids


async def test_a_stale_change_key_conflicts_and_changes_nothing(world: WriteBackWorld) -> None:
    before = await world.body()
    world.org.update_item_if(ALICE, before.item_id, None, body="organizer's newer text")
    [result] = await world.writer.write_bodies(ALICE, [ItemBody(before.item_id, before.change_key, "ours", True)],
                                               notify=True)
    assert isinstance(result, WriteConflictError)
    assert world.organizer_copy().body == "organizer's newer text"


async def test_a_revoked_mailbox_refuses_writes_but_still_reads(world: WriteBackWorld) -> None:
    world.org.writes.revoke(ALICE)
    before = await world.body()
    [result] = await world.writer.write_bodies(ALICE, [ItemBody(before.item_id, before.change_key, "x", True)],
                                               notify=False)
    assert isinstance(result, WriteDeniedError)
    assert world.organizer_copy().body == AGENDA


async def test_sending_to_all_updates_the_attendees_copies(world: WriteBackWorld) -> None:
    before = await world.body()
    await world.writer.write_bodies(ALICE, [ItemBody(before.item_id, before.change_key, "<p>all</p>", True)],
                                    notify=True)
    bob_copy = next(m for box, m in world.org.copies("standup") if box == BOB)
    assert bob_copy.body == "<p>all</p>"


async def ews_call(org: Organisation, tmp_path: Path, fn: Any) -> Any:
    with serving("ews", org, tmp_path) as config:
        source = EwsSource(config.exchange, config.users)
        try:
            return await source.run_as(ALICE, fn)
        finally:
            await source.close()


def _items(org: Organisation, account: Any, stale: bool) -> list[tuple[CalendarItem, list[str]]]:
    copy = next(m for box, m in org.copies("standup") if box == ALICE)
    key = "stale" if stale else copy.change_key
    return [(CalendarItem(account=account, id=copy.item_id, changekey=key, body=HTMLBody("x")), ["body"])]


async def test_exchangelib_raises_a_conflict_out_of_a_whole_bulk_update(tmp_path: Path) -> None:
    """The defect: ErrorIrresolvableConflict is not one of the errors exchangelib 5.6 returns per item, so
    bulk_update raises it and the other items' results are lost. When this starts failing, exchangelib
    returns it per item and PerItemUpdateItem can go."""
    org = organisation()

    def bulk(account: Any) -> object:
        return account.bulk_update(items=_items(org, account, stale=True), conflict_resolution=NEVER_OVERWRITE)

    with pytest.raises(Exception, match="ErrorIrresolvableConflict"):
        await ews_call(org, tmp_path, bulk)

    def per_item(account: Any) -> list[object]:
        return list(PerItemUpdateItem(account=account).call(
            items=_items(org, account, stale=True), conflict_resolution=NEVER_OVERWRITE,
            message_disposition=SAVE_ONLY, send_meeting_invitations_or_cancellations=SEND_TO_NONE,
            suppress_read_receipts=True))

    [result] = await ews_call(org, tmp_path, per_item)
    assert isinstance(result, ews_errors.ErrorIrresolvableConflict)


async def test_ews_records_conflict_resolution_and_meeting_update_mode(tmp_path: Path) -> None:
    org = organisation()

    def save(account: Any) -> object:
        [(item, fields)] = _items(org, account, stale=False)
        return item.save(update_fields=fields, conflict_resolution=NEVER_OVERWRITE,
                         send_meeting_invitations=SEND_TO_NONE)

    await ews_call(org, tmp_path, save)
    [write] = org.writes.log(ALICE)
    assert (write.protocol, write.conflict_resolution, write.send) == ("ews", "NeverOverwrite", "SendToNone")
    assert next(m for box, m in org.copies("standup") if box == BOB).body == AGENDA  # SendToNone: not sent


async def test_ews_delete_item_field_empties_the_body(tmp_path: Path) -> None:
    org = organisation()

    def delete(account: Any) -> object:
        [(item, fields)] = _items(org, account, stale=False)
        item.body = None
        return item.save(update_fields=fields, conflict_resolution=NEVER_OVERWRITE)

    await ews_call(org, tmp_path, delete)
    assert next(m for box, m in org.copies("standup") if box == ALICE).body == ""
