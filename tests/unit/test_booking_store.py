"""Bookings through the store: reconcile on a real SQLite file with occurrences inserted by SQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.booking import planner as rules
from pbxsync.plugin.booking.reconcile import reconcile_bookings
from pbxsync.plugin.booking.store import (
    active_booking_for_room,
    booking_by_id,
    booking_history,
    bookings_starting,
    list_bookings,
    load_copies,
    participants_to_call,
)
from pbxsync.plugin.commands.conferences import conference_json, render_table, show_conferences
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import Config, PbxConfig, UserConfig
from pbxsync.sync.model import Attendee, AttendeeKind, Occurrence, ResponseType, utc_text
from pbxsync.sync.store.db import Store, open_store

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def make_config(db: Path) -> Config:
    return Config(database=str(db), pbx=PbxConfig(rooms=["850"]), users=[
        UserConfig(extension="201", email=[ALICE], name="Alice", room="801"),
        UserConfig(extension="202", email=[BOB], name="Bob", room="802"),
        UserConfig(extension="203", email=[CAROL], name="Carol", room="801"),
    ])


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def person(email: str, response: ResponseType = ResponseType.ACCEPT,
           kind: AttendeeKind = AttendeeKind.REQUIRED) -> Attendee:
    return Attendee(email, email.partition("@")[0].title(), kind, response)


DEFAULT_START = at(10)


def occ(uid: str = "m1", start: datetime = DEFAULT_START, location: str = "PBX AUTOCALL",
        organizer: str = ALICE, attendees: Sequence[Attendee] = (person(BOB), person("guest@partner.org")),
        **kw: object) -> Occurrence:
    return Occurrence(item_id=f"{uid}@{start.isoformat()}", change_key="ck", uid=uid, start=start,
                      end=start + timedelta(hours=1), subject=f"Meeting {uid}", location=location,
                      organizer_email=organizer, organizer_name="Organizer", attendees=tuple(attendees),
                      **kw)  # type: ignore[arg-type]


async def put(store: Store, mailbox: str, *occurrences: Occurrence, replace_all: bool = True,
              ok: bool = True) -> None:
    """What a sync of `mailbox` leaves behind: its occurrences replaced and its folder_sync row."""
    async with store.transaction() as conn:
        if not ok:
            await conn.execute(
                "INSERT INTO folder_sync (mailbox, folder, last_attempt, last_error, error_kind) "
                "VALUES (?, 'calendar', ?, 'boom', 'network') ON CONFLICT (mailbox, folder) DO UPDATE SET "
                "last_error = 'boom', error_kind = 'network'", (mailbox, utc_text(NOW)))
            return
        if replace_all:
            await conn.execute("DELETE FROM occurrences WHERE mailbox = ?", (mailbox,))
        for o in occurrences:
            await conn.execute(
                "INSERT INTO occurrences (mailbox, item_id, change_key, uid, occurrence_key, recurrence_id, "
                "series_item_id, start_utc, end_utc, timezone, subject, location, organizer_email, "
                "organizer_name, attendees, is_cancelled, is_all_day, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, 'UTC', ?, ?, ?, ?, ?, ?, ?, ?)",
                (mailbox, o.item_id, o.change_key, o.uid, o.occurrence_key,
                 utc_text(o.recurrence_id) if o.recurrence_id else None, utc_text(o.start), utc_text(o.end),
                 o.subject, o.location, o.organizer_email, o.organizer_name,
                 json.dumps([{"email": a.email, "name": a.name, "kind": a.kind.value,
                              "response": a.response.value} for a in o.attendees]),
                 int(o.is_cancelled), int(o.is_all_day), utc_text(NOW)))
        await conn.execute(
            "INSERT INTO folder_sync (mailbox, folder, window_start, window_end, last_attempt, last_success) "
            "VALUES (?, 'calendar', ?, ?, ?, ?) ON CONFLICT (mailbox, folder) DO UPDATE SET "
            "last_success = excluded.last_success, last_error = NULL, error_kind = NULL, "
            "window_start = excluded.window_start, window_end = excluded.window_end",
            (mailbox, utc_text(NOW - timedelta(days=1)), utc_text(NOW + timedelta(days=30)),
             utc_text(NOW), utc_text(NOW)))


@pytest.fixture
def store(store_on_disk: Store) -> Store:
    return store_on_disk


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "pbxsync.db")


async def reconcile(store: Store, config: Config, now: datetime = NOW) -> tuple[int, int, int, int]:
    s = await reconcile_bookings(store, Directory.from_config(config), config, now)
    return (s.created, s.updated, s.cancelled, s.rejected)


async def test_a_pbx_meeting_becomes_a_booking_with_the_exact_json_contract(store: Store, config: Config) -> None:
    await put(store, ALICE, occ())
    await put(store, BOB, occ())
    assert await reconcile(store, config) == (1, 0, 0, 0)
    [booking] = await list_bookings(store, NOW)
    assert conference_json(booking, NOW) == {
        "id": booking.id,
        "uid": "m1",
        "subject": "Meeting m1",
        "private": False,
        "room": "801",
        "start": "2026-12-01T10:00:00+00:00",
        "end": "2026-12-01T11:00:00+00:00",
        "autocall": True,
        "state": "scheduled",
        "organizer": {"email": ALICE, "extension": "201"},
        "participants": [
            {"extension": "201", "email": ALICE, "name": "Alice", "response": "organizer", "call": True,
             "via_group": None, "forwarded": False, "outcome": None, "autocall": None},
            {"extension": "202", "email": BOB, "name": "Bob", "response": "accept", "call": True,
             "via_group": None, "forwarded": False, "outcome": None, "autocall": None},
        ],
        "unmatched": ["guest@partner.org"],
        "unmatched_reasons": {},
        "reason": None,
        "pin": None,
        "notices": [],
    }
    assert await reconcile(store, config) == (0, 0, 0, 0)  # nothing changed, nothing written
    assert conference_json(booking, at(10, 30))["state"] == "active"
    assert conference_json(booking, at(11))["state"] == "done"


async def test_moves_keep_booking_and_participant_ids_and_leave_history(store: Store, config: Config) -> None:
    await put(store, ALICE, occ())
    await reconcile(store, config)
    [before] = await list_bookings(store, NOW)
    await put(store, ALICE, occ(start=at(14), attendees=[person(BOB, ResponseType.DECLINE)]))
    assert await reconcile(store, config) == (0, 1, 0, 0)
    after = await booking_by_id(store, before.id)
    assert after is not None and after.draft.start == at(14)
    assert [p.id for p in after.draft.participants] == [p.id for p in before.draft.participants]
    assert [p.extension for p in participants_to_call(after)] == ["201"]  # Bob declined
    history = await booking_history(store, before.id)
    assert [e.kind for e in history] == ["create", "update"]
    assert "moved from 2026-12-01T10:00:00+00:00" in history[1].detail
    assert "202 will not be called (decline)" in history[1].detail


async def test_cancellation_is_idempotent_and_hidden_unless_all(store: Store, config: Config) -> None:
    await put(store, ALICE, occ())
    await put(store, BOB, occ())
    await reconcile(store, config)
    await put(store, BOB, occ(is_cancelled=True))
    assert await reconcile(store, config) == (0, 0, 1, 0)
    assert await reconcile(store, config) == (0, 0, 0, 0)
    assert await list_bookings(store, NOW) == []
    [cancelled] = await list_bookings(store, NOW, include_all=True)
    shown = conference_json(cancelled, NOW)
    assert (shown["state"], shown["reason"]) == ("cancelled", rules.CANCELLED_IN_EXCHANGE)
    assert await active_booking_for_room(store, "801", at(10, 30)) is None


async def test_a_failed_sync_changes_nothing_and_the_organizer_deletion_cancels(store: Store, config: Config) -> None:
    await put(store, ALICE, occ())
    await put(store, BOB, occ())
    await reconcile(store, config)
    before = await list_bookings(store, NOW, include_all=True)
    await put(store, ALICE, ok=False)
    async with store.transaction() as conn:  # even if the rows were gone, a failed mailbox proves nothing
        await conn.execute("DELETE FROM occurrences WHERE mailbox = ?", (ALICE,))
    assert await reconcile(store, config) == (0, 0, 0, 0)
    assert await list_bookings(store, NOW, include_all=True) == before
    await put(store, ALICE)  # a good sync: the organizer's calendar no longer has it
    assert await reconcile(store, config) == (0, 0, 1, 0)
    [gone] = await list_bookings(store, NOW, include_all=True)
    assert gone.draft.reason == rules.ORGANIZER_DELETED


async def test_rejections_are_listed_with_their_reason(store: Store, config: Config) -> None:
    await put(store, BOB, occ("ext", organizer="boss@partner.org"), occ("ok", start=at(12), organizer=BOB,
                                                                          attendees=[]))
    await put(store, ALICE, occ("a", start=at(15)), occ("c", start=at(15, 30), organizer=CAROL),
              occ("x", start=at(15, 45), attendees=[]))
    assert await reconcile(store, config) == (3, 0, 0, 2)
    shown = {b.draft.uid: conference_json(b, NOW) for b in await list_bookings(store, NOW)}
    assert shown["ext"]["state"] == "rejected"
    assert shown["ext"]["reason"] == "the organizer boss@partner.org is not a PBX user"
    assert shown["ext"]["organizer"] == {"email": "boss@partner.org", "extension": None}
    assert shown["ext"]["room"] is None
    assert (shown["a"]["room"], shown["c"]["room"]) == ("801", "850")
    assert shown["x"]["state"] == "rejected" and shown["x"]["reason"].startswith("room conflict: room 801")
    table = render_table(await list_bookings(store, NOW), NOW)
    assert "reason: the organizer boss@partner.org is not a PBX user" in table
    assert table.splitlines()[0].split()[:3] == ["ID", "STATE", "START"]


async def test_queries_for_autocall_and_room_admission(store: Store, config: Config) -> None:
    await put(store, ALICE, occ(), occ("later", start=at(16)))
    await reconcile(store, config)
    assert await active_booking_for_room(store, "801", at(9, 49)) is None
    early = await active_booking_for_room(store, "801", at(9, 50), early_join=timedelta(minutes=10))
    running = await active_booking_for_room(store, "801", at(10, 59))
    assert early is not None and running is not None and early.id == running.id
    assert await active_booking_for_room(store, "801", at(11)) is None
    assert [b.draft.uid for b in await bookings_starting(store, at(10), at(17))] == ["m1", "later"]
    assert [p.extension for p in participants_to_call(running)] == ["201", "202"]
    assert all(p.id is not None for p in running.draft.participants)


async def test_five_thousand_attendees_through_the_store(store: Store, config: Config) -> None:
    crowd = [person(f"guest{i}@partner.org") for i in range(5_000)] + [person(BOB), Attendee("", "No Mail",
             AttendeeKind.REQUIRED, ResponseType.UNKNOWN)]
    await put(store, ALICE, occ(attendees=crowd))
    assert await reconcile(store, config) == (1, 0, 0, 0)
    [booking] = await list_bookings(store, NOW)
    assert len(booking.draft.unmatched) == 5_000
    assert [p.extension for p in booking.draft.participants] == ["201", "202"]


async def test_an_unreadable_row_distrusts_its_mailbox_instead_of_crashing(store: Store, config: Config) -> None:
    await put(store, ALICE, occ())
    await put(store, BOB, occ())
    await reconcile(store, config)
    async with store.transaction() as conn:
        await conn.execute("UPDATE occurrences SET attendees = 'not json' WHERE mailbox = ?", (ALICE,))
    assert await reconcile(store, config) == (0, 0, 0, 0)  # Alice's copy is unreadable: nothing cancelled
    [booking] = await list_bookings(store, NOW)
    assert booking.draft.state.value == "scheduled"


async def test_stored_copies_name_the_readable_rows_and_the_untrusted_mailboxes(store: Store) -> None:
    await put(store, ALICE, occ())
    await put(store, BOB, occ())
    async with store.transaction() as conn:
        await conn.execute("UPDATE occurrences SET attendees = 'not json' WHERE mailbox = ?", (ALICE,))
    loaded = await load_copies(store)
    assert [c.mailbox for c in loaded.copies] == [BOB]
    assert loaded.broken_mailboxes == {ALICE}


async def test_stored_copies_share_the_values_rows_repeat(store: Store) -> None:
    """A reconcile holds every copy at once: repeated values are one string, a repeated attendee list
    one tuple, and the copies read as stored."""
    await put(store, ALICE, occ("m1"), occ("m2", start=at(12)))
    await put(store, BOB, occ("m1"))
    copies = (await load_copies(store)).copies
    assert [(c.mailbox, c.occurrence) for c in copies] == [(ALICE, occ("m1")), (ALICE, occ("m2", start=at(12))),
                                                           (BOB, occ("m1"))]
    first, second, third = (c.occurrence for c in copies)
    assert first.attendees is second.attendees is third.attendees
    assert first.organizer_name is third.organizer_name and first.location is second.location
    assert copies[0].mailbox is copies[1].mailbox and copies[0].updated_at is copies[2].updated_at


async def test_show_conferences_json_and_all(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cli.db")
    store = await open_store(config.database)
    try:
        await put(store, ALICE, occ(), occ("old", start=at(6)))
        await reconcile(store, config, now=at(5))
    finally:
        await store.close()
    upcoming = json.loads(await show_conferences(config.database, True, False, NOW))
    everything = json.loads(await show_conferences(config.database, True, True, NOW))
    assert [c["uid"] for c in upcoming] == ["m1"]
    assert [(c["uid"], c["state"]) for c in everything] == [("old", "done"), ("m1", "scheduled")]
    assert await show_conferences(str(tmp_path / "empty.db"), False, False, NOW) == "no conference bookings"


def test_the_cli_prints_the_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pbxsync.plugin.cli import main

    tomorrow = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    config_file = tmp_path / "pbxsync.toml"
    config_file.write_text(f"""
database = "cli.db"
[exchange]
server = "http://127.0.0.1:1/EWS/Exchange.asmx"
username = "svc"
[pbx]
rooms = ["850"]
[[users]]
extension = "201"
email = "{ALICE}"
name = "Alice"
room = "801"
""")

    async def prepare() -> None:
        config = make_config(tmp_path / "cli.db")
        store = await open_store(config.database)
        try:
            await put(store, ALICE, occ(start=tomorrow, attendees=[]))
            await reconcile(store, config, now=datetime.now(UTC))
        finally:
            await store.close()

    asyncio.run(prepare())
    assert main(["--config", str(config_file), "conferences", "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert (shown["uid"], shown["room"], shown["state"], shown["start"]) == (
        "m1", "801", "scheduled", utc_text(tomorrow))
    assert main(["--config", str(config_file), "conferences"]) == 0
    assert "Meeting m1" in capsys.readouterr().out


async def test_concurrent_reconciles_do_not_book_twice(store: Store, config: Config) -> None:
    await put(store, ALICE, occ(), occ("b", start=at(12)))
    first, second = await asyncio.gather(reconcile(store, config), reconcile(store, config))
    assert sorted([first, second]) == [(0, 0, 0, 0), (2, 0, 0, 0)]
    assert len(await list_bookings(store, NOW)) == 2
