"""Both sources (EWS through exchangelib, Graph) against their simulators serving the same messy calendars
(tests/data/messy-calendars.json): what each reads must be the same, item by item (issue 12)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.sync.config import ExchangeConfig, SyncConfig, UserConfig
from pbxsync.sync.errors import SourceAccessError
from pbxsync.sync.model import AttendeeKind, CalendarWindow, Occurrence, ResponseType, Sensitivity
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import Fault, Organisation
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource

DATA = Path(__file__).parent.parent / "data" / "messy-calendars.json"
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
START, END = datetime(2026, 3, 19, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC)
ALICE, BOB, CAROL, DAVE, ERIN = ("alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com",
                                 "erin@example.com")


@pytest.fixture
def org() -> Organisation:
    return Organisation.load_file(DATA, now=NOW)


@pytest.fixture
def servers(org: Organisation, tmp_path: Path) -> Iterator[tuple[EwsSimulator, GraphSimulator]]:
    with EwsSimulator(org) as ews, GraphSimulator(org, tls_dir=tmp_path / "tls") as graph:
        yield ews, graph


@pytest.fixture(params=["ews", "graph"])
async def source(request: pytest.FixtureRequest,
                 servers: tuple[EwsSimulator, GraphSimulator]) -> AsyncIterator[MailboxSource]:
    ews, graph = servers
    made: MailboxSource
    if request.param == "ews":
        made = EwsSource(ExchangeConfig(server=ews.ews_url, auth="basic", username="svc-pbx@example.com",
                                        password=Secret("svc-pw"), max_connections=2),
                         [UserConfig(extension="101", email=[ALICE])])
    else:
        made = GraphSource(ExchangeConfig(backend="graph", tenant_id=graph.app.tenant_id, client_id=graph.app.client_id,
                                          client_secret=Secret(graph.app.client_secret), authority=graph.authority,
                                          graph_endpoint=graph.graph_endpoint, ca_file=graph.tls.ca_file),
                           SyncConfig(days_back=1, days_ahead=30), clock=lambda: NOW)
    yield made
    await made.close()


async def window(source: MailboxSource, mailbox: str) -> CalendarWindow:
    return await source.calendar_window(mailbox, START, END)


def by_uid(found: CalendarWindow, uid: str) -> Occurrence:
    (occ,) = [o for o in found.occurrences if o.uid == uid]
    return occ


async def test_private_and_confidential_meetings_keep_their_subject_and_say_how_private(
        source: MailboxSource) -> None:
    alice = await window(source, ALICE)
    board = by_uid(alice, "private-board")
    assert (board.sensitivity, board.subject) == (Sensitivity.PRIVATE, "Board: acquisition of Contoso")
    assert by_uid(alice, "confidential-hr").sensitivity is Sensitivity.CONFIDENTIAL
    assert by_uid(alice, "group-call").sensitivity is Sensitivity.NORMAL


async def test_each_copy_carries_its_owners_own_answer(source: MailboxSource) -> None:
    assert by_uid(await window(source, ALICE), "private-board").my_response is ResponseType.ORGANIZER
    assert by_uid(await window(source, BOB), "private-board").my_response is ResponseType.ACCEPT
    assert by_uid(await window(source, ERIN), "forwarded").my_response is ResponseType.TENTATIVE
    dave = await window(source, DAVE)
    assert by_uid(dave, "forwarded").my_response is ResponseType.DECLINE
    assert by_uid(dave, "group-call").my_response is ResponseType.UNKNOWN  # came through the group


async def test_rooms_are_resources_and_groups_plain_attendees(source: MailboxSource) -> None:
    call = by_uid(await window(source, ALICE), "group-call")
    assert [(a.email, a.kind) for a in call.attendees] == [
        ("team@example.com", AttendeeKind.REQUIRED), ("guest@partner.org", AttendeeKind.OPTIONAL),
        ("room.4@example.com", AttendeeKind.RESOURCE)]


async def test_enhanced_locations_and_teams_meetings_read_like_the_location_line(source: MailboxSource) -> None:
    assert by_uid(await window(source, CAROL), "enhanced").location == "Room 4.01; PBX AUTOCALL"
    assert by_uid(await window(source, ALICE), "teams").location == "Microsoft Teams Meeting; PBX"


async def test_an_appointment_copied_without_uid_is_read_with_an_empty_uid(source: MailboxSource) -> None:
    (copied,) = [o for o in (await window(source, ALICE)).occurrences if o.item_id == "AAMkCOPIED1"]
    assert (copied.uid, copied.location, copied.organizer_email) == ("", "PBX", ALICE)


async def test_a_custom_time_zone_lands_at_the_right_utc_time(source: MailboxSource) -> None:
    nepal = by_uid(await window(source, BOB), "kathmandu")
    # 10:00 in Kathmandu (UTC+05:45) is 04:15Z; the zone itself is only a label, "UTC" for a custom one.
    assert (nepal.start, nepal.end, nepal.timezone) == (datetime(2026, 3, 31, 4, 15, tzinfo=UTC),
                                                         datetime(2026, 3, 31, 5, 15, tzinfo=UTC), "UTC")


async def test_a_series_with_many_exceptions_holds_exactly_the_remaining_occurrences(source: MailboxSource) -> None:
    series = sorted((o for o in (await window(source, CAROL)).occurrences if o.uid == "exceptions"),
                    key=lambda o: o.start)
    berlin = timedelta(hours=2)  # CEST
    local = [(o.start + berlin).strftime("%m-%d %H:%M") for o in series]
    assert local == ["04-01 08:30", "04-03 10:00", "04-04 17:00", "04-06 08:30", "04-08 08:30", "04-09 09:00",
                     "04-10 08:30"]
    assert len({o.series_item_id for o in series}) == 1 and series[0].series_item_id
    assert series[5].location == "Room 2; PBX AUTOCALL"
    moved = series[2]  # the 5th's occurrence, moved to the evening before: its RecurrenceId stays the 5th
    assert moved.recurrence_id == datetime(2026, 4, 5, 6, 30, tzinfo=UTC)


async def test_groups_expand_to_their_people_nested_groups_and_loops_included(source: MailboxSource) -> None:
    team = await source.expand_group(ALICE, "Team@Example.com")
    assert team is not None and team.complete and team.address == "team@example.com"
    assert team.members == (BOB, CAROL, DAVE)  # the outside contact is nobody's mailbox
    everyone = await source.expand_group(ALICE, "everyone@example.com")
    assert everyone is not None and everyone.members == (ALICE, BOB, CAROL, DAVE, ERIN)
    part = await source.expand_group(ALICE, "everyone@example.com", max_members=3)
    assert part is not None and not part.complete and len(part.members) == 4


async def test_people_rooms_and_outside_addresses_are_no_groups(source: MailboxSource) -> None:
    for address in (BOB, "room.4@example.com", "guest@partner.org", "o'brien@example.com"):
        assert await source.expand_group(ALICE, address) is None, address


async def test_a_denied_group_lookup_is_an_access_error(source: MailboxSource, org: Organisation) -> None:
    org.inject_fault(Fault("access_denied"), operation="groups" if isinstance(source, GraphSource) else "ExpandDL")
    with pytest.raises(SourceAccessError):
        await source.expand_group(ALICE, "team@example.com")
