"""Graph JSON -> sync.model, on payloads shaped like Microsoft's published Graph v1.0 examples
(event "get" with several locations, calendarView delta rows, contact "get", error bodies)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.model import AttendeeKind, PhoneKind, ResponseType, Sensitivity
from pbxsync.sync.secrets import Secret
from pbxsync.sync.sources.graph import phone_builder
from pbxsync.sync.sources.graph_auth import AppCredentials, describe_token_error, scope_for
from pbxsync.sync.sources.graph_client import GraphClient, retry_after_seconds
from pbxsync.sync.sources.graph_mapping import (
    contact_to_model,
    event_to_occurrence,
    is_removed,
    parse_date_time_time_zone,
    removed_row,
)
from tests.support.graph_payloads import CONTACT, EVENT_WITH_LOCATIONS

# A calendarView delta row for an exception of a series (Prefer: outlook.timezone="UTC").
EXCEPTION_ROW: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.event",
    "@odata.etag": 'W/"EZ9r3czxY0m2jz8c45czkwAAFXcvIw=="',
    "id": "AAMkADAGAADDdm4NAAA=_20171106T170000Z",
    "changeKey": "EZ9r3czxY0m2jz8c45czkwAAFXcvIw==",
    "originalStartTimeZone": "W. Europe Standard Time",
    "originalEndTimeZone": "W. Europe Standard Time",
    "iCalUId": ("040000008200E00074C5B7101A82E00807E10B06D02AC02D9F51D301000000000000000010000000"
                "9AB6F6F3B0B8C847A8B5E1FE0C5D9F3D"),
    "subject": "Weekly sync (moved)",
    "isAllDay": False,
    "isCancelled": False,
    "seriesMasterId": "AAMkADAGAADDdm4MAAA=",
    "type": "exception",
    "originalStart": "2017-11-06T17:00:00Z",
    "start": {"dateTime": "2017-11-06T18:30:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2017-11-06T19:00:00.0000000", "timeZone": "UTC"},
    "location": {"displayName": "PBX AUTOCALL"},
    "locations": [{"displayName": "PBX AUTOCALL", "locationType": "default"}],
    "attendees": [{"type": "required", "status": {"response": "declined", "time": "2017-11-01T08:00:00Z"},
                   "emailAddress": {"name": "Bob", "address": "bob@example.com"}}],
    "organizer": {"emailAddress": {"name": "Alice", "address": "alice@example.com"}},
}

REMOVED_ROW = {"@odata.type": "#microsoft.graph.event", "id": "AAMkADAGAADDdm4OAAA=",
               "@removed": {"reason": "deleted"}}

phone = phone_builder("DE")


def test_event_with_several_locations_in_pacific_time() -> None:
    occ = event_to_occurrence(EVENT_WITH_LOCATIONS)
    assert occ.start == datetime(2017, 11, 3, 1, tzinfo=UTC)  # 18:00 PDT
    assert occ.end == datetime(2017, 11, 3, 2, tzinfo=UTC)
    assert occ.timezone == "Pacific Standard Time"
    assert occ.location == "Conf Room 3; Fourth Coffee; Home Office"
    assert occ.uid == EVENT_WITH_LOCATIONS["iCalUId"] and occ.recurrence_id is None and occ.series_item_id == ""
    assert (occ.organizer_email, occ.organizer_name) == ("meganb@contoso.onmicrosoft.com", "Megan Bowen")
    assert [(a.email, a.kind, a.response) for a in occ.attendees] == [
        ("danas@contoso.onmicrosoft.com", AttendeeKind.REQUIRED, ResponseType.UNKNOWN),
        ("alexw@contoso.onmicrosoft.com", AttendeeKind.OPTIONAL, ResponseType.TENTATIVE),
        ("confroom3@contoso.onmicrosoft.com", AttendeeKind.RESOURCE, ResponseType.ACCEPT),
    ]
    assert occ.change_key == EVENT_WITH_LOCATIONS["changeKey"] and not occ.is_cancelled


def test_locations_missing_from_display_name_are_appended() -> None:
    event = copy.deepcopy(EVENT_WITH_LOCATIONS)
    event["location"] = {"displayName": "PBX"}
    assert event_to_occurrence(event).location == "PBX; Conf Room 3; Fourth Coffee; Home Office"
    event["location"] = None
    assert event_to_occurrence(event).location == "Conf Room 3; Fourth Coffee; Home Office"


def test_exception_row_keeps_series_identity() -> None:
    occ = event_to_occurrence(EXCEPTION_ROW, series_uid="040000008200E00074C5B7101A82E008SERIES")
    assert occ.uid == "040000008200E00074C5B7101A82E008SERIES"  # the series' UID, as EWS reports it
    assert occ.series_item_id == "AAMkADAGAADDdm4MAAA="
    assert occ.recurrence_id == datetime(2017, 11, 6, 17, tzinfo=UTC)
    assert occ.start == datetime(2017, 11, 6, 18, 30, tzinfo=UTC)
    assert occ.occurrence_key == "2017-11-06T17:00:00+00:00"
    assert occ.attendees[0].response is ResponseType.DECLINE
    assert occ.timezone == "W. Europe Standard Time"


def test_occurrence_without_original_start_uses_its_start() -> None:
    row = dict(EXCEPTION_ROW, type="occurrence")
    del row["originalStart"]
    assert event_to_occurrence(row).recurrence_id == datetime(2017, 11, 6, 18, 30, tzinfo=UTC)


def test_all_day_event_in_its_zone() -> None:
    row = dict(EXCEPTION_ROW, type="singleInstance", seriesMasterId=None, isAllDay=True,
               start={"dateTime": "2017-11-06T00:00:00.0000000", "timeZone": "W. Europe Standard Time"},
               end={"dateTime": "2017-11-07T00:00:00.0000000", "timeZone": "W. Europe Standard Time"})
    occ = event_to_occurrence(row)
    assert occ.is_all_day and occ.start == datetime(2017, 11, 5, 23, tzinfo=UTC)
    assert occ.end == datetime(2017, 11, 6, 23, tzinfo=UTC)


def test_an_event_without_icaluid_is_data_with_an_empty_uid_not_an_error() -> None:
    # "Copy to My Calendar" makes events without iCalUId; the booking side keys them by their item id
    # (issue 12: such an event is booked, never a failed calendar). It used to be a data error.
    single = dict(EXCEPTION_ROW, type="singleInstance", seriesMasterId=None, iCalUId=None)
    assert event_to_occurrence(single).uid == ""
    del single["iCalUId"]
    assert event_to_occurrence(single).uid == ""
    # An occurrence of a series whose master has no iCalUId: the series' UID is "", never the
    # occurrence's own per-instance iCalUId (which differs for each occurrence).
    occ = event_to_occurrence(EXCEPTION_ROW, series_uid="")
    assert (occ.uid, occ.series_item_id) == ("", "AAMkADAGAADDdm4MAAA=")


def test_sensitivity_and_the_owners_own_response() -> None:
    occ = event_to_occurrence(EVENT_WITH_LOCATIONS)
    assert (occ.sensitivity, occ.my_response) == (Sensitivity.NORMAL, ResponseType.ORGANIZER)
    for text, expected in (("private", Sensitivity.PRIVATE), ("Confidential", Sensitivity.CONFIDENTIAL),
                           ("personal", Sensitivity.PERSONAL), ("secret-new-level", Sensitivity.PRIVATE),
                           (None, Sensitivity.NORMAL)):
        assert event_to_occurrence(dict(EXCEPTION_ROW, sensitivity=text)).sensitivity is expected, text
    row = dict(EXCEPTION_ROW, responseStatus={"response": "declined", "time": "2017-11-01T08:00:00Z"})
    assert event_to_occurrence(row).my_response is ResponseType.DECLINE
    assert event_to_occurrence(EXCEPTION_ROW).my_response is ResponseType.UNKNOWN  # not sent: unknown


def test_a_custom_or_unknown_original_zone_is_labelled_utc_and_changes_no_instant() -> None:
    row = dict(EXCEPTION_ROW, originalStartTimeZone="Customized Time Zone")
    occ = event_to_occurrence(row)
    assert (occ.timezone, occ.start) == ("UTC", datetime(2017, 11, 6, 18, 30, tzinfo=UTC))
    assert event_to_occurrence(dict(EXCEPTION_ROW, originalStartTimeZone="tzone://Microsoft/Utc")).timezone == "UTC"


def test_removed_row() -> None:
    assert is_removed(REMOVED_ROW) and not is_removed(EXCEPTION_ROW)
    gone = removed_row(REMOVED_ROW)
    assert (gone.item_id, gone.reason) == ("AAMkADAGAADDdm4OAAA=", "deleted")


def test_contact_example() -> None:
    contact = contact_to_model(CONTACT, phone)
    assert (contact.display_name, contact.given_name, contact.surname) == ("Pavel Bansky", "Pavel", "Bansky")
    assert (contact.company, contact.title) == ("Contoso", "Web Marketing Manager")
    assert contact.emails == ("pavelb@contoso.onmicrosoft.com",)
    assert [(p.kind, p.e164, p.digits) for p in contact.phones] == [
        (PhoneKind.BUSINESS, "+17325550102", "17325550102"),
        (PhoneKind.HOME, "+49301234567", "0301234567"),
        (PhoneKind.MOBILE, "+491712345678", "491712345678"),
    ]


@pytest.mark.parametrize("change", [
    {"start": {"dateTime": "2017-11-06T18:30:00", "timeZone": "Mars/Olympus_Mons"}},
    {"start": {"dateTime": "yesterday", "timeZone": "UTC"}},
    {"start": "2017-11-06T18:30:00Z"},
    {"end": {"dateTime": "2017-11-06T10:00:00", "timeZone": "UTC"}},  # before the start
    {"subject": ["not", "text"]},
    {"attendees": "everyone"},
    {"attendees": [{"type": "required", "emailAddress": "bob@example.com"}]},
    {"isCancelled": "no"},
    {"type": "somethingElse"},
    {"type": "seriesMaster"},
    {"seriesMasterId": None},
    {"sensitivity": ["private"]},
    {"id": ""},
    {"id": "x" * 5000},
])
def test_hostile_event_values_are_data_errors(change: dict[str, Any]) -> None:
    with pytest.raises(SourceDataError):
        event_to_occurrence({**EXCEPTION_ROW, **change})


@pytest.mark.parametrize("change", [
    {"businessPhones": "+1 732 555 0102"}, {"businessPhones": [42]}, {"mobilePhone": 4711},
    {"emailAddresses": ["pavelb@contoso.onmicrosoft.com"]}, {"displayName": {"a": 1}}, {"id": None},
])
def test_hostile_contact_values_are_data_errors(change: dict[str, Any]) -> None:
    with pytest.raises(SourceDataError):
        contact_to_model({**CONTACT, **change}, phone)


def test_control_characters_and_huge_strings_are_cleaned() -> None:
    occ = event_to_occurrence({**EXCEPTION_ROW, "subject": "Hi\r\nAction: Originate\x00" + "x" * 20000})
    assert "\r" not in occ.subject and "\n" not in occ.subject and len(occ.subject) <= 1024


def test_seven_digit_fractions_and_windows_zones() -> None:
    moment = parse_date_time_time_zone({"dateTime": "2026-03-29T01:30:00.1234567", "timeZone":
                                        "W. Europe Standard Time"}, "x")
    assert moment == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT", now=datetime(2026, 10, 21, 7, 27, 30,
                                                                               tzinfo=UTC).timestamp()) == 30.0


def test_links_to_other_hosts_are_refused() -> None:
    client = GraphClient("https://graph.microsoft.com/v1.0", tokens=None)  # type: ignore[arg-type]
    ok = "https://graph.microsoft.com/v1.0/users/a@b/contacts/delta?$deltatoken=x"
    assert client.check_link(ok, "deltaLink") == ok
    for bad in ("https://evil.example/v1.0/users/a@b/contacts/delta", "http://graph.microsoft.com/v1.0/x",
                "https://graph.microsoft.com.evil.example/v1.0/x", 42):
        with pytest.raises(SourceDataError):
            client.check_link(bad, "nextLink")
    client.close()


def test_token_error_is_one_line_without_secret() -> None:
    creds = AppCredentials("https://login.microsoftonline.com", "tenant-1", "client-1", Secret("s3cr3t"))
    text = describe_token_error({"error": "invalid_client", "error_description":
                                 "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1 s3cr3t"}, creds)
    assert text == ("Graph: Entra ID refused the app client-1 in tenant tenant-1: invalid_client (AADSTS7000215)"
                    " - client secret or certificate wrong, expired or revoked")


def test_scope_follows_the_cloud() -> None:
    assert scope_for("https://graph.microsoft.com/v1.0") == "https://graph.microsoft.com/.default"
    assert scope_for("https://microsoftgraph.chinacloudapi.cn/v1.0") == "https://microsoftgraph.chinacloudapi.cn/.default"
