"""Issue 16: the "Join by phone" block written into the organizer's meeting, over the EWS simulator with
real exchangelib and over the Graph simulator, read back through the same protocol."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.booking.pins import booking_pin
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.cli import main
from pbxsync.plugin.writeback.plan import WriteState
from pbxsync.plugin.writeback.render import MAX_BODY_CHARS, find_block
from pbxsync.plugin.writeback.store import load_records, read_only_mailboxes
from pbxsync.sync.simulator.mailboxes import Fault, Organisation
from pbxsync.sync.sources.writer import CalendarWriter, ItemBody
from pbxsync.sync.store.db import open_store
from tests.support.write_back import (
    AGENDA,
    ALICE,
    NOW,
    START,
    WriteBackWorld,
    config_text,
    ews_exchange,
    open_world,
    organisation,
    serving,
    write_back_world,
)

pytestmark = pytest.mark.parametrize("backend", ["ews", "graph"])


@pytest.fixture
async def world(backend: str, tmp_path: Path) -> AsyncIterator[WriteBackWorld]:
    async with write_back_world(backend, tmp_path) as world:
        yield world


def alice_writes(org: Organisation) -> int:
    return len(org.writes.log(ALICE))


def without_block(body: str) -> str:
    found = find_block(body, True)
    assert found is not None
    return body[:found[0]] + body[found[1]:]


async def standup_pin(world: WriteBackWorld) -> str:
    [booking] = [b for b in await list_bookings(world.store, NOW) if b.draft.uid == "standup"]
    pin = await booking_pin(world.store, booking.id)
    assert pin is not None
    return pin


async def test_the_block_is_added_with_room_and_pin_and_the_rest_is_untouched(world: WriteBackWorld) -> None:
    await world.run_pass(NOW)
    body = await world.body()
    assert body.is_html
    assert "Dial-in: +49 30 1234567" in body.content and "room number 8001" in body.content
    assert f"PIN: {await standup_pin(world)}" in body.content
    assert "The PBX will call you at the start." in body.content
    assert without_block(body.content) == AGENDA  # byte for byte
    assert world.org.writes.log(ALICE)[0].send == "SendToAllAndSaveCopy"


async def test_ten_passes_write_exactly_once(world: WriteBackWorld) -> None:
    summaries = [await world.run_pass(NOW + timedelta(minutes=n)) for n in range(10)]
    assert alice_writes(world.org) == 1
    # From the second pass on the sync has brought our change back: not even a read is needed.
    assert [s.jobs for s in summaries] == [2] + [0] * 9
    [record] = [r for r in (await load_records(world.store)).values() if r.mailbox == ALICE]
    assert record.state is WriteState.WRITTEN
    assert record.change_key == world.organizer_copy().change_key  # our own change, recognised


async def test_a_moved_meeting_in_another_room_gets_its_block_updated(world: WriteBackWorld) -> None:
    await world.run_pass(NOW)
    users = [replace(u, room="8003") if u.extension == "101" else u for u in world.config.users]
    world.config = replace(world.config, users=users)
    world.org.move_meeting("standup", START + timedelta(hours=1), START + timedelta(hours=1, minutes=30))
    await world.run_pass(NOW + timedelta(minutes=1))
    content = (await world.body()).content
    assert "room number 8003" in content and "8001" not in content
    assert "Booked for 2026-12-02 10:00-10:30" in content
    assert content.count("pbxsync:join-by-phone") == 2  # one block: its two markers
    assert without_block(content) == AGENDA
    assert alice_writes(world.org) == 2


async def test_an_organizer_edit_elsewhere_in_the_body_is_kept_without_a_write(world: WriteBackWorld) -> None:
    await world.run_pass(NOW)
    copy = world.organizer_copy()
    edited = copy.body.replace("Bring numbers", "Bring numbers and coffee")
    world.org.update_item_if(ALICE, copy.item_id, None, body=edited)
    for n in range(1, 4):
        await world.run_pass(NOW + timedelta(minutes=n))
    assert (await world.body()).content == edited
    assert alice_writes(world.org) == 1


async def test_the_block_goes_when_the_meeting_stops_saying_pbx(world: WriteBackWorld) -> None:
    await world.run_pass(NOW)
    world.org.update_meeting("standup", location="Teams")
    await world.run_pass(NOW + timedelta(minutes=1))
    assert (await world.body()).content == AGENDA
    await world.run_pass(NOW + timedelta(minutes=2))
    assert alice_writes(world.org) == 2


class EditsBeforeFirstWrite:
    """A writer that lets the organizer save an edit between pbxsync's read and its write, once."""

    def __init__(self, inner: CalendarWriter, org: Organisation) -> None:
        self.inner, self.org, self.edited = inner, org, False

    async def read_bodies(self, mailbox: str, item_ids: list[str]) -> list[ItemBody | Exception]:
        return list(await self.inner.read_bodies(mailbox, item_ids))

    async def write_bodies(self, mailbox: str, bodies: list[ItemBody], *, notify: bool) -> list[str | Exception]:
        if not self.edited and mailbox == ALICE:
            self.edited = True
            current = self.org.item(ALICE, bodies[0].item_id)
            assert hasattr(current, "body")
            self.org.update_item_if(ALICE, bodies[0].item_id, None, body=current.body.replace(
                "Bring numbers", "Bring the Q3 numbers"))
        return list(await self.inner.write_bodies(mailbox, bodies, notify=notify))


async def test_a_conflict_reads_again_and_keeps_the_newer_edit(world: WriteBackWorld) -> None:
    world.writer = EditsBeforeFirstWrite(world.writer, world.org)  # type: ignore[assignment]
    summary = await world.run_pass(NOW)
    assert summary.conflicts == 1 and summary.failed == 0
    content = (await world.body()).content
    assert "Bring the Q3 numbers" in content and "PIN: " in content
    assert without_block(content) == AGENDA.replace("Bring numbers", "Bring the Q3 numbers")
    assert alice_writes(world.org) == 1


async def test_a_revoked_write_permission_makes_the_mailbox_read_only_with_one_log_line(
        world: WriteBackWorld, caplog: pytest.LogCaptureFixture) -> None:
    world.org.writes.revoke(ALICE)
    with caplog.at_level(logging.INFO, logger="pbxsync.writeback"):
        for n in range(5):
            await world.run_pass(NOW + timedelta(minutes=n))
    lines = [r.getMessage() for r in caplog.records if "read-only" in r.getMessage()]
    assert len(lines) == 1 and ALICE in lines[0]
    assert ALICE in await read_only_mailboxes(world.store)
    assert (await world.body()).content == AGENDA
    records = {r.mailbox: r.state for r in (await load_records(world.store)).values()}
    assert records[ALICE] is WriteState.READ_ONLY and records["bob@example.com"] is WriteState.WRITTEN
    # Access granted again: the recheck writes the block and the mailbox leaves the read-only list.
    world.org.writes.restore(ALICE)
    await world.run_pass(NOW + timedelta(hours=7))
    assert "PIN: " in (await world.body()).content
    assert ALICE not in await read_only_mailboxes(world.store)


async def test_conferences_and_users_show_the_write_back(world: WriteBackWorld, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    world.org.writes.revoke("bob@example.com")
    await world.run_pass(NOW)
    config = tmp_path / "cli.toml"
    config.write_text(config_text(Path(world.config.database), ews_exchange("http://127.0.0.1:9/ews")))
    await world.store.close()  # the CLI opens the database itself
    try:
        assert await asyncio.to_thread(main, ["--config", str(config), "conferences", "--json", "--all"]) == 0
        shown = {c["uid"]: c["write_back"] for c in json.loads(capsys.readouterr().out)}
        assert shown["standup"] == {"state": "written", "error": None, "attempts": 0, "next_attempt_at": None}
        assert shown["later"]["state"] == "read_only" and "refused" in shown["later"]["error"]
        assert await asyncio.to_thread(main, ["--config", str(config), "conferences", "--all"]) == 0
        table = capsys.readouterr().out
        assert "JOIN BLOCK" in table and "written" in table and "read_only" in table
        assert await asyncio.to_thread(main, ["--config", str(config), "users", "--json"]) == 0
        users = {u["extension"]: u["write_back"] for u in json.loads(capsys.readouterr().out)}
        assert users["101"] == {"read_only": None, "meetings": {"written": 1}}
        assert users["102"]["read_only"]["reason"] and users["102"]["meetings"] == {"read_only": 1}
        assert await asyncio.to_thread(main, ["--config", str(config), "users"]) == 0
        assert "READ-ONLY since" in capsys.readouterr().out
    finally:
        world.store = await open_store(world.config.database)


async def test_a_failed_write_is_retried_after_its_back_off(world: WriteBackWorld) -> None:
    operation = "UpdateItem" if world.config.exchange.backend == "ews" else "events.patch"
    world.org.inject_fault(Fault("http_status", status=400), operation=operation, mailbox=ALICE)
    first = await world.run_pass(NOW)
    assert first.failed == 1 and alice_writes(world.org) == 0
    [failed] = [r for r in (await load_records(world.store)).values() if r.mailbox == ALICE]
    assert (failed.state, failed.attempts, failed.next_attempt_at) == (WriteState.FAILED, 1, NOW + timedelta(minutes=1))
    assert (await world.run_pass(NOW + timedelta(seconds=30))).jobs == 0  # still backing off
    await world.run_pass(NOW + timedelta(minutes=1))
    assert alice_writes(world.org) == 1 and "PIN: " in (await world.body()).content


async def test_a_body_too_large_to_rewrite_is_left_alone(backend: str, tmp_path: Path) -> None:
    org = organisation(body="<p>" + "x" * (MAX_BODY_CHARS + 1) + "</p>")
    with serving(backend, org, tmp_path) as config:
        w = await open_world(org, config)
        try:
            await w.run_pass(NOW)
            assert (await w.run_pass(NOW + timedelta(minutes=1))).jobs == 0
            states = {r.mailbox: r.state for r in (await load_records(w.store)).values()}
        finally:
            await w.close()
    assert states[ALICE] is WriteState.TOO_LARGE and alice_writes(org) == 0
