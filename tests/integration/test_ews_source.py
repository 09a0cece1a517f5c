"""EwsSource (exchangelib, unmodified) against the EWS simulator over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.sync.config import ExchangeConfig, UserConfig
from pbxsync.sync.errors import SourceAccessError, SourceAuthError, SourceBusyError, SourceDataError, SourceError
from pbxsync.sync.model import AttendeeKind, ResponseType
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Fault, Organisation
from pbxsync.sync.sources.ews import EwsSource
from tests.support.source_scenarios import contacts_create_update_delete

DATA = Path(__file__).parent.parent / "data" / "mailboxes.json"
ALICE, BOB = "alice@example.com", "bob@example.com"
MARCH, MAY = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def org() -> Organisation:
    return Organisation.load_file(DATA, now=datetime(2026, 3, 20, 12, tzinfo=UTC))


@pytest.fixture
def sim(org: Organisation) -> Iterator[EwsSimulator]:
    with EwsSimulator(org) as server:
        yield server


def make_source(sim: EwsSimulator, **overrides: object) -> tuple[EwsSource, list[float]]:
    settings: dict[str, object] = dict(server=sim.ews_url, auth="basic", username="svc-pbx@example.com",
                                       password=Secret("svc-pw"), max_connections=2)
    settings.update(overrides)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    users = [UserConfig(extension="101", email=[ALICE], username=ALICE, password=Secret("alice-pw")),
             UserConfig(extension="102", email=[BOB], username=BOB, password=Secret("wrong"))]
    return EwsSource(ExchangeConfig(**settings), users, "DE", sleep=sleep,
                     max_busy_wait_seconds=5.0), slept


async def test_contacts_create_update_delete_across_syncs(sim: EwsSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    await contacts_create_update_delete(source, org)
    await source.close()


async def test_contacts_paging_is_bounded(sim: EwsSimulator, org: Organisation) -> None:
    for i in range(7):
        org.add_contact(BOB, ContactRecord("", "", f"Person {i}"))
    source, _ = make_source(sim)
    source.page_size, source.max_pages = 2, 2
    cut = await source.sync_contacts(BOB, "")
    assert not cut.complete and len(cut.upserts) == 4
    source.max_pages = 100
    rest = await source.sync_contacts(BOB, cut.sync_state)
    assert rest.complete and len(rest.upserts) == 4  # 8 contacts in all
    assert org.counters.get("SyncFolderItems", BOB) == 4  # two bounded pages, then two more


async def test_calendar_window_series_exception_cancel_and_dst(sim: EwsSimulator) -> None:
    source, _ = make_source(sim)
    window = await source.calendar_window(ALICE, MARCH, MAY)
    standup = sorted((o for o in window.occurrences if o.uid == "weekly-standup"), key=lambda o: o.start)
    starts = [o.start for o in standup]
    # Berlin 09:00 is 08:00Z before the DST switch (29 March) and 07:00Z after it.
    assert starts[0] == datetime(2026, 3, 23, 8, tzinfo=UTC)
    assert datetime(2026, 3, 26, 10, tzinfo=UTC) in starts  # the moved occurrence (09:00 -> 11:00 Berlin)
    assert datetime(2026, 3, 30, 7, tzinfo=UTC) not in starts  # the cancelled one
    assert datetime(2026, 4, 2, 7, tzinfo=UTC) in starts
    moved = next(o for o in standup if o.start == datetime(2026, 3, 26, 10, tzinfo=UTC))
    assert moved.recurrence_id == datetime(2026, 3, 26, 8, tzinfo=UTC)
    assert moved.occurrence_key == "2026-03-26T08:00:00+00:00"
    assert len({o.item_id for o in standup}) == len(standup)
    assert all(o.series_item_id and o.series_item_id not in {x.item_id for x in standup} for o in standup)
    assert standup[0].timezone == "W. Europe Standard Time"
    assert standup[0].organizer_email == ALICE
    kinds = {(a.email, a.kind, a.response) for a in standup[0].attendees}
    assert (BOB, AttendeeKind.REQUIRED, ResponseType.ACCEPT) in kinds
    assert ("carol@example.com", AttendeeKind.OPTIONAL, ResponseType.DECLINE) in kinds
    assert ("room1@example.com", AttendeeKind.RESOURCE, ResponseType.ACCEPT) in kinds
    ny = sorted((o for o in window.occurrences if o.uid == "ny-call"), key=lambda o: o.start)
    # New York 10:00: 15:00Z before 8 March (US DST), 14:00Z after; Windows zone id in the data file.
    assert [o.start.hour for o in ny] == [15, 14, 14]
    offsite = next(o for o in window.occurrences if o.uid == "offsite")
    assert offsite.is_all_day and offsite.end - offsite.start == timedelta(days=1)
    assert offsite.start == datetime(2026, 3, 24, 23, tzinfo=UTC)


async def test_item_id_only_delete_and_moves_reach_sync_calendar(sim: EwsSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    alice0 = await source.sync_calendar(ALICE, "")
    bob0 = await source.sync_calendar(BOB, "")
    organizer_copy = next(m for m in org.meetings(ALICE) if m.uid == "weekly-standup")
    org.cancel_meeting("weekly-standup")
    alice1 = await source.sync_calendar(ALICE, alice0.sync_state)
    assert alice1.deleted_item_ids == (organizer_copy.item_id,) and alice1.changed_item_ids == ()
    bob1 = await source.sync_calendar(BOB, bob0.sync_state)
    assert len(bob1.changed_item_ids) == 1 and not bob1.deleted_item_ids
    window = await source.calendar_window(BOB, MARCH, MAY)
    assert all(o.is_cancelled for o in window.occurrences if o.uid == "weekly-standup")
    org.move_occurrence("ny-call", datetime(2026, 3, 13, 14, tzinfo=UTC), datetime(2026, 3, 13, 16, tzinfo=UTC),
                        datetime(2026, 3, 13, 17, tzinfo=UTC))
    alice2 = await source.sync_calendar(ALICE, alice1.sync_state)
    assert len(alice2.changed_item_ids) == 1


async def test_no_change_pass_costs_one_sync_per_folder_and_no_getitem(sim: EwsSimulator,
                                                                       org: Organisation) -> None:
    source, _ = make_source(sim)
    contacts = await source.sync_contacts(ALICE, "")
    calendar = await source.sync_calendar(ALICE, "")
    org.counters.reset()
    again_c = await source.sync_contacts(ALICE, contacts.sync_state)
    again_k = await source.sync_calendar(ALICE, calendar.sync_state)
    assert not again_c.upserts and not again_k.has_changes
    # One SyncFolderItems per folder, and one FindFolder to see the contacts sub-folders as they are now
    # (a sub-folder moved to Deleted Items must lose its contacts at the next pass).
    assert org.counters.by_operation() == {"SyncFolderItems": 2, "FindFolder": 1}


async def test_impersonation_denied_and_vanished_mailbox(sim: EwsSimulator, org: Organisation) -> None:
    source, _ = make_source(sim, username=ALICE, password=Secret("alice-pw"))
    with pytest.raises(SourceAccessError, match="ImpersonateUserDenied"):
        await source.sync_contacts(BOB, "")
    ok, _ = make_source(sim)
    await ok.sync_contacts(BOB, "")
    org.remove_mailbox(BOB)
    with pytest.raises(SourceAccessError, match="does not exist"):
        await ok.sync_contacts(BOB, "")
    fresh, _ = make_source(sim)
    with pytest.raises(SourceAccessError, match="does not exist"):
        await fresh.sync_calendar(BOB, "")


async def test_per_user_credentials_and_401(sim: EwsSimulator) -> None:
    source, _ = make_source(sim, impersonation=False)
    assert (await source.sync_contacts(ALICE, "")).upserts
    with pytest.raises(SourceAuthError) as caught:
        await source.sync_contacts(BOB, "")  # configured with a wrong password
    assert "wrong" not in str(caught.value) and "\n" not in str(caught.value)
    bad, _ = make_source(sim, password=Secret("nope"))
    with pytest.raises(SourceAuthError):
        await bad.sync_calendar(ALICE, "")


async def test_access_denied_fault(sim: EwsSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    state = await source.sync_contacts(ALICE, "")
    org.inject_fault(Fault("access_denied"), operation="SyncFolderItems", mailbox=ALICE)
    with pytest.raises(SourceError):
        await source.sync_contacts(ALICE, state.sync_state)


async def test_server_busy_back_off_is_honoured_then_bounded(sim: EwsSimulator, org: Organisation) -> None:
    source, slept = make_source(sim)
    org.inject_fault(Fault("server_busy", back_off_ms=1500), operation="SyncFolderItems", times=2)
    changes = await source.sync_contacts(ALICE, "")
    assert changes.upserts and slept == [1.5, 1.5]
    org.inject_fault(Fault("server_busy", back_off_ms=600_000), operation="SyncFolderItems")
    with pytest.raises(SourceBusyError) as caught:
        await source.sync_contacts(ALICE, changes.sync_state)
    assert caught.value.retry_after_seconds == 600.0


async def test_autodiscover_finds_the_simulator(sim: EwsSimulator, org: Organisation) -> None:
    source, _ = make_source(sim, server="", autodiscover_url=sim.autodiscover_url)
    assert source.endpoint_for(ALICE) == ""  # not used yet: autodiscover has not run for it
    changes = await source.sync_contacts(ALICE, "")
    assert len(changes.upserts) == 2
    assert org.counters.get("GetUserSettings") == 1
    assert source.endpoint_for(ALICE.upper()) == sim.ews_url
    configured, _ = make_source(sim)
    assert configured.endpoint_for(BOB) == sim.ews_url  # [exchange] server: no autodiscover needed


async def test_resolve_x500(sim: EwsSimulator) -> None:
    source, _ = make_source(sim)
    assert await source.resolve_address(ALICE, "/o=Example/ou=Exchange/cn=Recipients/cn=bob") == BOB
    assert await source.resolve_address(ALICE, "/o=Example/cn=nobody") is None


@pytest.mark.parametrize("fault", [Fault("malformed"), Fault("http_status", status=502, body=b"<html>"),
                                   Fault("raw", body=b"\x00\xff not xml")])
async def test_broken_responses_are_source_errors(sim: EwsSimulator, org: Organisation, fault: Fault) -> None:
    source, _ = make_source(sim)
    await source.sync_contacts(ALICE, "")
    org.inject_fault(fault, operation="SyncFolderItems")
    with pytest.raises(SourceError) as caught:
        await source.sync_contacts(ALICE, "")
    assert "\n" not in str(caught.value)


async def test_hostile_values_are_sanitised(sim: EwsSimulator, org: Organisation) -> None:
    base = next(m for m in org.meetings(ALICE) if m.uid == "offsite")
    from dataclasses import replace
    org.add_meeting(replace(base, item_id="", uid="hostile", subject="Ä\x01" + "x" * 10_000_000,
                            location="PBX\r\nAction: Originate", wire_timezone_id="Mars/Olympus",
                            is_all_day=False, start=base.start, end=base.end + timedelta(hours=1)), [ALICE])
    source, _ = make_source(sim)
    window = await source.calendar_window(ALICE, MARCH, MAY)
    hostile = next(o for o in window.occurrences if o.uid == "hostile")
    assert len(hostile.subject) == 1024 and "\x01" not in hostile.subject and hostile.subject.startswith("Ä")
    assert "\r" not in hostile.location and "\n" not in hostile.location
    assert hostile.timezone == "UTC"  # an unknown zone id is dropped; start/end are UTC anyway
    with pytest.raises(SourceDataError):  # a sync state that is not ours is refused, not trusted
        await source.sync_calendar(ALICE, "Zm9yZ2Vk")


async def test_duplicate_item_ids_are_collapsed(sim: EwsSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    org.inject_fault(Fault("duplicate_items"), operation="SyncFolderItems")
    changes = await source.sync_contacts(ALICE, "")
    assert len(changes.upserts) == len({c.item_id for c in changes.upserts}) == 2
    org.inject_fault(Fault("duplicate_items"), operation="FindItem")
    window = await source.calendar_window(ALICE, MARCH, MAY)
    assert len(window.occurrences) == len({o.item_id for o in window.occurrences})
