"""What the simulators serve of messy calendars (issue 12), element by element, beside Microsoft's published
shapes: EWS Sensitivity, MyResponseType, MailboxType, EnhancedLocation, a custom TimeZoneDefinition, items
without UID, ExpandDL; Graph sensitivity, responseStatus, locations[], onlineMeeting, events without
iCalUId, /groups and transitiveMembers. The data-file keys that describe them are checked too."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxsync.sync.simulator.ews_xml import TYPES_NS, Shape, Viewer, calendar_item_xml
from pbxsync.sync.simulator.graph_groups import find_groups, transitive_members
from pbxsync.sync.simulator.graph_json import HttpError, event_json, master_json
from pbxsync.sync.simulator.mailboxes import DataFileError, MeetingRecord, OccurrenceView, Organisation

DATA = Path(__file__).parent.parent / "data" / "messy-calendars.json"
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
START, END = datetime(2026, 3, 19, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC)
T = f"{{{TYPES_NS}}}"
ENDPOINT = "https://127.0.0.1:1/v1.0"


@pytest.fixture(scope="module")
def org() -> Organisation:
    return Organisation.load_file(DATA, now=NOW)


def view(org: Organisation, mailbox: str, uid: str) -> OccurrenceView:
    return next(o for o in org.calendar_view(mailbox, START, END) if o.master.uid == uid)


def ews(org: Organisation, mailbox: str, entry: MeetingRecord | OccurrenceView) -> ET.Element:
    xml = calendar_item_xml(entry, Shape("AllProperties", set()), Viewer(mailbox, org.mailbox_type))
    return ET.fromstring(xml.replace("<t:CalendarItem>", f'<t:CalendarItem xmlns:t="{TYPES_NS}">', 1))


def test_ews_calendar_item_elements_in_schema_order(org: Organisation) -> None:
    item = ews(org, "bob@example.com", view(org, "bob@example.com", "private-board"))
    tags = [e.tag.removeprefix(T) for e in item]
    assert tags[:4] == ["ItemId", "ItemClass", "Subject", "Sensitivity"]  # ItemType's order, then CalendarItem's
    assert tags.index("CalendarItemType") < tags.index("MyResponseType") < tags.index("Organizer")
    assert tags.index("EndTimeZone") < tags.index("IsOnlineMeeting")
    assert item.findtext(f"{T}Sensitivity") == "Private"
    assert item.findtext(f"{T}MyResponseType") == "Accept"


def test_ews_mailbox_types_tell_groups_people_and_outside_addresses_apart(org: Organisation) -> None:
    item = ews(org, "alice@example.com", view(org, "alice@example.com", "group-call"))
    types = {m.findtext(f"{T}EmailAddress"): m.findtext(f"{T}MailboxType") for m in item.iter(f"{T}Mailbox")}
    assert types == {"alice@example.com": "Mailbox", "team@example.com": "PublicDL",
                     "guest@partner.org": "OneOff", "room.4@example.com": "OneOff"}
    assert org.mailbox_type("everyone@example.com") == "GroupMailbox"


def test_ews_enhanced_location_custom_zone_and_no_uid(org: Organisation) -> None:
    planning = ews(org, "carol@example.com", view(org, "carol@example.com", "enhanced"))
    assert planning.findtext(f"{T}EnhancedLocation/{T}DisplayName") == "PBX AUTOCALL"
    nepal = ews(org, "bob@example.com", view(org, "bob@example.com", "kathmandu"))
    zone = nepal.find(f"{T}StartTimeZone")
    assert zone is not None and zone.get("Id") == "Customized Time Zone"
    period = zone.find(f"{T}Periods/{T}Period")
    assert period is not None and period.get("Bias") == "-PT5H45M"  # UTC+05:45
    (copied,) = [m for m in org.meetings("alice@example.com") if not m.has_uid]
    assert ews(org, "alice@example.com", copied).find(f"{T}UID") is None


def test_graph_event_of_a_private_teams_meeting_and_of_a_copy_without_icaluid(org: Organisation) -> None:
    board = event_json(org, "bob@example.com", view(org, "bob@example.com", "private-board"), UTC, "UTC")
    assert (board["sensitivity"], board["responseStatus"]["response"]) == ("private", "accepted")
    teams = event_json(org, "alice@example.com", view(org, "alice@example.com", "teams"), UTC, "UTC")
    assert (teams["isOnlineMeeting"], teams["onlineMeetingProvider"]) == (True, "teamsForBusiness")
    assert teams["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    planning = event_json(org, "carol@example.com", view(org, "carol@example.com", "enhanced"), UTC, "UTC")
    assert [p["displayName"] for p in planning["locations"]] == ["Room 4.01", "PBX AUTOCALL"]
    assert planning["location"]["displayName"] == "Room 4.01"
    (copied,) = [o for o in org.calendar_view("alice@example.com", START, END) if not o.master.has_uid]
    assert event_json(org, "alice@example.com", copied, UTC, "UTC")["iCalUId"] is None
    assert master_json(org, "alice@example.com", copied)["iCalUId"] is None
    forwarded = event_json(org, "erin@example.com", view(org, "erin@example.com", "forwarded"), UTC, "UTC")
    assert forwarded["responseStatus"]["response"] == "tentativelyAccepted"
    nepal = event_json(org, "bob@example.com", view(org, "bob@example.com", "kathmandu"), UTC, "UTC")
    assert nepal["originalStartTimeZone"] == "Customized Time Zone"


def test_graph_groups_by_mail_and_their_transitive_members_page_by_page(org: Organisation) -> None:
    found = find_groups(org, ENDPOINT, {"$filter": "mail eq 'Team@example.com'"})
    (team,) = found["value"]
    assert (team["displayName"], team["groupTypes"], team["securityEnabled"]) == ("Team", [], False)
    assert find_groups(org, ENDPOINT, {"$filter": "mail eq 'o''brien@example.com'"})["value"] == []
    with pytest.raises(HttpError) as refused:
        find_groups(org, ENDPOINT, {"$filter": "startswith(mail,'t')"})
    assert refused.value.status == 400
    pages = [transitive_members(org, ENDPOINT, team["id"], {"$top": "2", "$skiptoken": str(n)}) for n in (0, 2, 4)]
    rows = [row for page in pages for row in page["value"]]
    assert ["@odata.nextLink" in page for page in pages] == [True, True, False]
    assert pages[0]["@odata.nextLink"].endswith("skiptoken=2")
    assert [(r["@odata.type"].rsplit(".", 1)[1], r["mail"]) for r in rows] == [
        ("group", "sub-team@example.com"), ("user", "bob@example.com"), ("user", "carol@example.com"),
        ("orgContact", "partner@partner.org"), ("user", "dave@example.com")]


def test_delivery_to_a_group_reaches_its_members_nested_ones_too(org: Organisation) -> None:
    holders = {box for box in ("alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com",
                               "erin@example.com") if any(m.uid == "group-call" for m in org.meetings(box))}
    assert holders == {"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}


def test_the_data_file_keys_for_messy_calendars_are_checked() -> None:
    with pytest.raises(DataFileError) as caught:
        Organisation.from_dict({
            "users": [{"email": "a@example.com", "password": "x"}],
            "groups": [{"email": "a@example.com", "kind": "club", "members": ["nobody", 3]}],
            "meetings": [{"organizer": {"email": "a@example.com"}, "start": "now", "sensitivity": "secret",
                          "locations": [1], "forwarded_to": [{"email": "ghost@example.com", "response": "maybe"}]}],
        }, now=NOW)
    text = "\n".join(caught.value.problems)
    for expected in ("$.groups[0].email: a@example.com is already a user or a group",
                     "$.groups[0].kind: use one of distribution, security, m365",
                     "$.groups[0].members[0]: expected an e-mail address", "$.groups[0].members[1]",
                     "$.meetings[0].sensitivity: use one of normal, personal, private, confidential",
                     "$.meetings[0].locations[0]: expected a string",
                     "$.meetings[0].forwarded_to[0].email: a forwarded copy goes to a user's mailbox",
                     "$.meetings[0].forwarded_to[0].response: use one of"):
        assert expected in text, expected
