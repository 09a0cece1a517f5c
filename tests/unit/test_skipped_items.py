"""One item never blocks a mailbox: the engine stores the rest, advances the state and reports the skip.

The sources decide what is unmappable (tests/integration/test_messy_contacts.py drives them through the
simulators); here a fake source hands the engine `SkippedItem`s directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from pbxsync.plugin.commands.sync_cmd import _report, summary_line
from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig, parse_config
from pbxsync.sync.engine import FolderResult, SyncEngine, UserSummary
from pbxsync.sync.model import (
    CalendarChanges,
    CalendarWindow,
    Contact,
    ContactChanges,
    Folder,
    Occurrence,
    SkippedItem,
)
from pbxsync.sync.plan import StoredOccurrenceRef, plan_calendar
from pbxsync.sync.secrets import Secret
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import contacts as contact_store
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import folder_state
from pbxsync.sync.store.skipped import skip_summaries

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ALICE = "alice@example.com"


def occ(item_id: str, start: datetime) -> Occurrence:
    return Occurrence(item_id=item_id, change_key="1", uid=f"uid-{item_id}", start=start,
                      end=start + timedelta(hours=1), subject=f"meeting {item_id}", location="PBX")


@dataclass
class ScriptedSource:
    """Hands out prepared results, one per call, and records the states it was given."""

    contacts: list[ContactChanges] = field(default_factory=list)
    windows: list[CalendarWindow] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        self.states.append(sync_state)
        return self.contacts.pop(0)

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges:
        return CalendarChanges(("changed",), (), "c1")

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        window = self.windows.pop(0)
        return CalendarWindow(start, end, window.occurrences, window.skipped)

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


def config(contacts: bool = True, calendar: bool = False) -> Config:
    return parse_config({
        "exchange": {"username": "svc@example.com", "password": "x"},
        "users": [{"extension": "101", "email": ALICE, "sync_contacts": contacts, "sync_calendar": calendar}],
    })


MESSAGE = SkippedItem("", "m1", "not a contact (IPM.Note)")
BROKEN = SkippedItem("Suppliers", "b1", "exchangelib could not read it (ValueError)")


async def test_a_skipped_item_leaves_the_folder_ok_stores_the_rest_and_advances_the_state(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    source = ScriptedSource(contacts=[
        ContactChanges((Contact("c1", "k1", "Carol"),), (), "s1", skipped=(MESSAGE, BROKEN)),
        ContactChanges((), (), "s2"),
    ])
    engine = SyncEngine(store, source, config())
    with caplog.at_level(logging.WARNING, "pbxsync.sync"):
        summary = await engine.sync_all(NOW)
    user = summary.users[0]
    assert summary.ok and user.contacts is not None
    assert (user.contacts.added, user.contacts.skipped, summary.skipped) == (1, 2, 2)
    assert [r.contact.display_name for r in await contact_store.list_contacts(store)] == ["Carol"]
    assert (await folder_state(store, ALICE, Folder.CONTACTS)).sync_state == "s1"
    lines = [r.getMessage() for r in caplog.records if "skipped an item" in r.getMessage()]
    assert len(lines) == 2
    assert "alice@example.com" in lines[1] and "'contacts/Suppliers'" in lines[1] and "'b1'" in lines[1]
    assert "exchangelib could not read it (ValueError)" in lines[1]

    summaries = await skip_summaries(store)
    assert summaries[(ALICE, Folder.CONTACTS)].count == 2
    assert {s.reason for s in summaries[(ALICE, Folder.CONTACTS)].latest} == {MESSAGE.reason, BROKEN.reason}

    # An incremental pass that reports nothing new keeps the skips: the items are still unreadable.
    await engine.sync_all(NOW + timedelta(minutes=5))
    assert source.states == ["", "s1"]
    assert (await skip_summaries(store))[(ALICE, Folder.CONTACTS)].count == 2


async def test_a_skip_ends_when_the_item_is_synced_or_deleted_and_a_full_fetch_replaces_them(store: Store) -> None:
    source = ScriptedSource(contacts=[
        ContactChanges((), (), "s1", skipped=(MESSAGE, BROKEN, SkippedItem("", "x1", "no usable id"))),
        ContactChanges((Contact("b1", "k2", "Bernd"),), ("m1",), "s2"),  # repaired, and the message deleted
    ])
    engine = SyncEngine(store, source, config())
    await engine.sync_all(NOW)
    await engine.sync_all(NOW + timedelta(minutes=5))
    latest = (await skip_summaries(store))[(ALICE, Folder.CONTACTS)]
    assert [(s.item_id, s.reason) for s in latest.latest] == [("x1", "no usable id")]

    # From an empty state (a reset) the source reports the whole folder: what it does not repeat is gone.
    async with store.transaction() as conn:
        await conn.execute("UPDATE folder_sync SET sync_state = ''")
    source.contacts.append(ContactChanges((), (), "s3", skipped=(BROKEN,)))
    await engine.sync_all(NOW + timedelta(minutes=10))
    assert [s.item_id for s in (await skip_summaries(store))[(ALICE, Folder.CONTACTS)].latest] == ["b1"]


async def test_a_skipped_calendar_item_keeps_its_stored_occurrence(store: Store) -> None:
    day = NOW + timedelta(days=1)
    source = ScriptedSource(windows=[
        CalendarWindow(NOW, NOW, (occ("o1", day), occ("o2", day))),
        CalendarWindow(NOW, NOW, (occ("o1", day),), (SkippedItem("", "o2", "unknown time zone"),)),
        CalendarWindow(NOW, NOW, (), (SkippedItem("", "", "no usable id"),)),
        CalendarWindow(NOW, NOW, ()),
    ])
    engine = SyncEngine(store, source, config(contacts=False, calendar=True))

    async def stored() -> list[str]:
        return sorted(r.occurrence.item_id for r in await calendar_store.load_occurrences(store))

    await engine.sync_all(NOW)
    summary = await engine.sync_all(NOW + timedelta(minutes=5))
    assert summary.ok and summary.users[0].calendar is not None and summary.users[0].calendar.skipped == 1
    assert await stored() == ["o1", "o2"]  # unreadable now, but a skip never cancels the booking
    await engine.sync_all(NOW + timedelta(minutes=10))
    assert await stored() == ["o1", "o2"]  # an item without an id could be any of them: nothing goes
    assert (await skip_summaries(store))[(ALICE, Folder.CALENDAR)].count == 1
    await engine.sync_all(NOW + timedelta(minutes=15))
    assert await stored() == []  # a complete window without skips: absent items are gone, as before
    assert (ALICE, Folder.CALENDAR) not in await skip_summaries(store)


def test_the_planner_keeps_stored_occurrences_of_skipped_items() -> None:
    start = NOW + timedelta(days=1)
    stored = {i: StoredOccurrenceRef(i, "1", "", start, start + timedelta(hours=1)) for i in ("a", "b", "c")}
    window = CalendarWindow(NOW, NOW + timedelta(days=7), (occ("a", start),), (SkippedItem("", "b", "x"),))
    assert plan_calendar(stored, (), window).deletes == ("c",)
    assert plan_calendar(stored, ("b",), window).deletes == ("b", "c")  # an explicit deletion still wins
    nameless = CalendarWindow(NOW, NOW + timedelta(days=7), (), (SkippedItem("", "", "x"),))
    assert plan_calendar(stored, ("c",), nameless).deletes == ("c",)


def test_sync_exits_0_and_warns_when_only_items_were_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    ok = UserSummary("101", ALICE, contacts=FolderResult(added=3, skipped=2), calendar=FolderResult())
    assert "+3 ~0 -0 (2 skipped)" in summary_line(ok)
    assert _report([ok], None, False, None) == 0
    captured = capsys.readouterr()
    assert "1 of 1 users synced" in captured.out
    assert "warning: 2 contacts item(s) of 101 (alice@example.com) could not be read" in captured.err
    failed = UserSummary("102", "bob@example.com", contacts=FolderResult(error="down", error_kind="source"))
    assert _report([ok, failed], None, True, None) == 1


# ---- the sources: an item they cannot map becomes a SkippedItem, the others are kept


def _ews_item(item_id: str, start: object, attendees: object = None) -> Any:
    tz = SimpleNamespace(key="UTC", ms_id="UTC")
    return SimpleNamespace(
        id=item_id, changekey="ck", uid=f"uid-{item_id}", subject="private", location="PBX", start=start,
        end=NOW + timedelta(hours=1), _start_timezone=tz, is_all_day=False, is_cancelled=False, type="Single",
        recurrence_id=None, organizer=None, required_attendees=attendees, optional_attendees=None, resources=None)


def test_an_ews_calendar_item_that_cannot_be_mapped_is_skipped_not_dropped() -> None:
    config = parse_config({"exchange": {"server": "http://127.0.0.1:1/EWS/Exchange.asmx", "username": "svc@x",
                                        "password": "pw"}, "users": [{"extension": "101", "email": ALICE}]})
    items = [_ews_item("ok", NOW), _ews_item("odd", NOW, attendees=42), _ews_item("none", None)]
    account = SimpleNamespace(calendar=SimpleNamespace(view=lambda start, end: SimpleNamespace(only=lambda *f: items)),
                              fetch=lambda ids, only_fields: [], primary_smtp_address=ALICE)
    window = EwsSource(config.exchange, config.users)._fetch_window(account, NOW, NOW + timedelta(days=1))
    assert [o.item_id for o in window.occurrences] == ["ok"]
    assert [(s.item_id, s.reason) for s in window.skipped] == [
        ("odd", "cannot map it (TypeError)"), ("none", "no usable id, start or end")]
    assert not any("private" in s.reason for s in window.skipped)  # a reason never carries the content


async def test_a_graph_row_that_cannot_be_mapped_is_skipped_and_the_mirror_keeps_the_rest() -> None:
    def event(item_id: str, kind: str = "singleInstance") -> dict[str, Any]:
        return {"id": item_id, "changeKey": "k", "iCalUId": "uid-" + item_id, "type": kind, "subject": "S",
                "start": {"dateTime": "2026-11-28T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-11-28T10:00:00", "timeZone": "UTC"}}

    rounds = [[event("E1"), event("E2", "somethingElse")], [event("E2")]]

    async def get_json(mailbox: str, url: str, headers: Any = None) -> dict[str, Any]:
        return {"value": rounds.pop(0), "@odata.deltaLink": "https://graph.example/v1.0/users/x/delta?$deltatoken=1"}

    exchange = ExchangeConfig(backend="graph", tenant_id="t", client_id="c", client_secret=Secret("s"),
                              graph_endpoint="https://graph.example/v1.0")
    source = GraphSource(exchange, SyncConfig(), clock=lambda: NOW)
    source.client.get_json = get_json  # type: ignore[method-assign]
    start, end = NOW, NOW + timedelta(days=7)
    first = await source.calendar_window(ALICE, start, end)
    assert [o.item_id for o in first.occurrences] == ["E1"]
    assert [s.item_id for s in first.skipped] == ["E2"] and "unknown type" in first.skipped[0].reason
    second = await source.calendar_window(ALICE, start, end)  # E2 is readable now
    assert [o.item_id for o in second.occurrences] == ["E1", "E2"] and second.skipped == ()
    await source.close()
