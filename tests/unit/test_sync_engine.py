"""The sync engine and its planner: incremental changes, isolation, and never losing data on failure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.errors import SourceAuthError, SourceError
from pbxsync.sync.model import (
    CalendarChanges,
    CalendarWindow,
    Contact,
    ContactChanges,
    Occurrence,
)
from pbxsync.sync.plan import StoredOccurrenceRef, plan_calendar, plan_contacts, sync_window
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import contacts as contact_store
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import all_folder_states

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def occ(item_id: str, start: datetime, *, ck: str = "1", series: str = "", uid: str = "") -> Occurrence:
    return Occurrence(item_id=item_id, change_key=ck, uid=uid or f"uid-{item_id}", start=start,
                      end=start + timedelta(hours=1), series_item_id=series, subject=f"meeting {item_id}")


class FakeSource:
    """An in-memory MailboxSource: contacts and occurrences per mailbox, failures on demand."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, Contact]] = {}
        self.deleted_contacts: dict[str, list[str]] = {}
        self.occurrences: dict[str, list[Occurrence]] = {}
        self.calendar_deleted: dict[str, list[str]] = {}
        self.calendar_changed: dict[str, bool] = {}
        self.fail: dict[str, Exception] = {}
        self.views = 0

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        if mailbox in self.fail:
            raise self.fail[mailbox]
        changes = ContactChanges(tuple(self.contacts.get(mailbox, {}).values()) if not sync_state else (),
                                 tuple(self.deleted_contacts.pop(mailbox, [])), sync_state="s1")
        return changes

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges:
        if mailbox in self.fail:
            raise self.fail[mailbox]
        changed = self.calendar_changed.pop(mailbox, False)
        return CalendarChanges(("x",) if changed else (), tuple(self.calendar_deleted.pop(mailbox, [])), "c1")

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        self.views += 1
        if mailbox in self.fail:
            raise self.fail[mailbox]
        inside = tuple(o for o in self.occurrences.get(mailbox, []) if o.start < end and o.end > start)
        return CalendarWindow(start, end, inside)

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


def config() -> Config:
    return parse_config({
        "exchange": {"username": "svc@example.com", "password": "x"},
        "users": [{"extension": "101", "email": "alice@example.com"},
                  {"extension": "102", "email": "bob@example.com"}],
    })


async def test_first_pass_stores_contacts_and_occurrences(store: Store) -> None:
    src = FakeSource()
    src.contacts["alice@example.com"] = {"c1": Contact("c1", "k1", "Carol")}
    src.occurrences["alice@example.com"] = [occ("o1", NOW + timedelta(days=1))]
    summary = await SyncEngine(store, src, config()).sync_all(NOW)
    assert summary.ok
    alice = next(u for u in summary.users if u.extension == "101")
    assert alice.contacts is not None and alice.contacts.added == 1
    assert alice.calendar is not None and alice.calendar.added == 1
    assert [r.contact.display_name for r in await contact_store.list_contacts(store)] == ["Carol"]
    assert [r.occurrence.item_id for r in await calendar_store.load_occurrences(store)] == ["o1"]


async def test_unchanged_calendar_skips_the_view(store: Store) -> None:
    src = FakeSource()
    engine = SyncEngine(store, src, config())
    await engine.sync_all(NOW)
    views = src.views
    summary = await engine.sync_all(NOW + timedelta(minutes=15))
    assert src.views == views  # folder sync said nothing changed, window did not move
    assert all(u.calendar is not None and u.calendar.skipped_view for u in summary.users)
    await engine.sync_all(NOW + timedelta(days=1))  # the window slid: a fresh view
    assert src.views == views + 2


async def test_one_users_failure_touches_nobody_else_and_keeps_its_own_data(store: Store) -> None:
    src = FakeSource()
    src.contacts["alice@example.com"] = {"c1": Contact("c1", "k1", "Carol")}
    src.occurrences["alice@example.com"] = [occ("o1", NOW + timedelta(days=1))]
    src.occurrences["bob@example.com"] = [occ("o2", NOW + timedelta(days=2))]
    engine = SyncEngine(store, src, config())
    await engine.sync_all(NOW)
    src.fail["alice@example.com"] = SourceAuthError("401 Unauthorized")
    src.occurrences["bob@example.com"].append(occ("o3", NOW + timedelta(days=3)))
    src.calendar_changed["bob@example.com"] = True
    summary = await engine.sync_all(NOW + timedelta(minutes=15))
    assert not summary.ok
    alice = next(u for u in summary.users if u.extension == "101")
    assert alice.contacts is not None and alice.contacts.error_kind == "auth"
    ids = sorted(r.occurrence.item_id for r in await calendar_store.load_occurrences(store))
    assert ids == ["o1", "o2", "o3"]  # alice's data kept, bob's new occurrence stored
    states = {(s.mailbox, s.folder.value): s for s in await all_folder_states(store)}
    assert states[("alice@example.com", "contacts")].last_error == "401 Unauthorized"
    assert states[("bob@example.com", "calendar")].last_error is None


async def test_a_failed_view_does_not_advance_the_folder_state(store: Store) -> None:
    src = FakeSource()
    src.occurrences["alice@example.com"] = [occ("o1", NOW + timedelta(days=1))]
    engine = SyncEngine(store, src, config())
    await engine.sync_all(NOW)
    src.calendar_deleted["alice@example.com"] = ["o1"]
    src.fail["alice@example.com"] = SourceError("connection reset")
    await engine.sync_all(NOW + timedelta(minutes=1))
    assert [r.occurrence.item_id for r in await calendar_store.load_occurrences(store)] == ["o1"]


class ViewFailsOnce(FakeSource):
    """Reports a change once (like Graph's in-memory mirror), then its view fails on that pass."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next_view = False

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        if self.fail_next_view:
            self.fail_next_view = False
            self.views += 1
            raise SourceError("connection reset during the view")
        return await super().calendar_window(mailbox, start, end)


async def test_a_change_seen_in_a_failed_pass_is_not_lost_in_the_next(store: Store) -> None:
    src = ViewFailsOnce()
    src.occurrences["alice@example.com"] = [occ("o1", NOW + timedelta(days=1))]
    engine = SyncEngine(store, src, config())
    await engine.sync_all(NOW)
    src.occurrences["alice@example.com"] = []  # cancelled in Exchange; the source reports it only once
    src.calendar_changed["alice@example.com"] = True
    src.fail_next_view = True
    failed = await engine.sync_all(NOW + timedelta(minutes=1))
    assert not failed.ok
    assert [r.occurrence.item_id for r in await calendar_store.load_occurrences(store)] == ["o1"]
    states = {(s.mailbox, s.folder.value): s for s in await all_folder_states(store)}
    assert states[("alice@example.com", "calendar")].last_error == "connection reset during the view"
    summary = await engine.sync_all(NOW + timedelta(minutes=2))  # the folder sync now says "no change"
    assert summary.ok
    alice = next(u for u in summary.users if u.extension == "101")
    assert alice.calendar is not None and not alice.calendar.skipped_view and alice.calendar.deleted == 1
    assert await calendar_store.load_occurrences(store) == []


async def test_item_id_only_deletion_of_a_series_master_removes_its_occurrences(store: Store) -> None:
    src = FakeSource()
    src.occurrences["alice@example.com"] = [occ("s1-a", NOW + timedelta(days=1), series="s1"),
                                            occ("s1-b", NOW + timedelta(days=2), series="s1"),
                                            occ("single", NOW + timedelta(days=2))]
    engine = SyncEngine(store, src, config())
    await engine.sync_all(NOW)
    src.occurrences["alice@example.com"] = [occ("single", NOW + timedelta(days=2))]
    src.calendar_deleted["alice@example.com"] = ["s1"]
    summary = await engine.sync_all(NOW + timedelta(minutes=1))
    alice = next(u for u in summary.users if u.extension == "101")
    assert alice.calendar is not None and alice.calendar.deleted == 2
    assert [r.occurrence.item_id for r in await calendar_store.load_occurrences(store)] == ["single"]


# ---- the pure planners ----

def test_contact_plan_applies_only_real_changes() -> None:
    stored = {"a": "1", "b": "1", "c": "1"}
    changes = ContactChanges(upserts=(Contact("a", "1", "same"), Contact("b", "2", "changed"),
                                      Contact("d", "1", "new"), Contact("d", "2", "new, later copy")),
                             deleted_item_ids=("c", "unknown"))
    plan = plan_contacts(stored, changes)
    assert [c.item_id for c in plan.updates] == ["b"]
    assert [(c.item_id, c.change_key) for c in plan.inserts] == [("d", "2")]
    assert plan.deletes == ("c",)


refs = st.builds(
    lambda i, day, series: StoredOccurrenceRef(f"o{i}", "1", series, NOW + timedelta(days=day),
                                               NOW + timedelta(days=day, hours=1)),
    st.integers(0, 30), st.integers(-60, 60), st.sampled_from(["", "s1", "s2"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(refs, max_size=20, unique_by=lambda r: r.item_id), st.integers(0, 3), st.integers(1, 40))
def test_calendar_plan_never_deletes_outside_the_window_without_an_explicit_deletion(
    stored_list: list[StoredOccurrenceRef], back: int, ahead: int
) -> None:
    stored = {r.item_id: r for r in stored_list}
    start, end = sync_window(NOW, back, ahead)
    plan = plan_calendar(stored, (), CalendarWindow(start, end, ()))
    for item_id in plan.deletes:
        ref = stored[item_id]
        inside = ref.start < end and ref.end >= start
        assert inside or ref.end < start - timedelta(days=30)
    assert plan_calendar(stored, (), None).deletes == ()  # no view, no explicit deletion: nothing goes


def test_sync_window_moves_once_a_day() -> None:
    assert sync_window(NOW, 1, 30) == sync_window(NOW + timedelta(hours=11), 1, 30)
    assert sync_window(NOW, 1, 30)[0] == datetime(2026, 11, 26, tzinfo=UTC)
    assert replace(occ("x", NOW)).occurrence_key == "2026-11-27T12:00:00+00:00"
