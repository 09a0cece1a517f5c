"""Graph v1.0 JSON for the simulator's mailbox records, shaped like Microsoft's published examples
(the `event` and `contact` resources, delta rows with `@removed`, OData error bodies)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from pbxsync.sync.simulator.organisation import Organisation
from pbxsync.sync.simulator.records import (
    AttendeeRecord,
    ContactRecord,
    MeetingRecord,
    OccurrenceView,
    OddItemRecord,
    own_response,
)

GRAPH_RESPONSES = {
    "unknown": "none",
    "organizer": "organizer",
    "tentative": "tentativelyAccepted",
    "accept": "accepted",
    "decline": "declined",
    "noresponse": "notResponded",
}
_NEVER = "0001-01-01T00:00:00Z"
GOID_PREFIX = "040000008200E00074C5B7101A82E008"


class HttpError(Exception):
    """An answer other than 200: status, OData error body and extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def error_body(code: str, message: str, request_id: str = "00000000-0000-0000-0000-000000000000") -> dict[str, Any]:
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                                     "request-id": request_id, "client-request-id": request_id}}}


def date_time_time_zone(moment: datetime, zone: tzinfo, zone_name: str) -> dict[str, str]:
    """{"dateTime": "2017-04-15T12:00:00.0000000", "timeZone": "UTC"}: wall clock in the asked zone."""
    local = moment.astimezone(zone)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S") + ".0000000", "timeZone": zone_name}


def occurrence_ical_uid(uid: str, original_start: datetime | None) -> str:
    """Graph gives each occurrence its own iCalUId: the series' GlobalObjectId with the instance date
    (YYYYMMDD as year-hi/lo, month, day bytes) written into bytes 16..19."""
    if original_start is None:
        return uid
    day = original_start.astimezone(UTC)
    stamp = f"{day.year:04X}{day.month:02X}{day.day:02X}"
    if uid.upper().startswith(GOID_PREFIX) and len(uid) >= 40:
        return uid[:32] + stamp + uid[40:]
    return f"{uid}-{stamp}"


def _recipient(org: Organisation, email: str, name: str) -> dict[str, Any]:
    address = email
    if email and "@" not in email:  # an X.500 address in the data: Graph reports SMTP
        user = org.user_by_legacy_dn(email)
        address = user.email if user else ""
        name = name or (user.name if user else "")
    return {"emailAddress": {"name": name or address, "address": address}}


def _attendee(org: Organisation, a: AttendeeRecord) -> dict[str, Any]:
    return {"type": a.kind, "status": {"response": GRAPH_RESPONSES.get(a.response, "none"), "time": _NEVER},
            **_recipient(org, a.email, a.name)}


# EWS LegacyFreeBusyStatus -> Graph's freeBusyStatus spelling; anything else is sent as it is (messy data).
_GRAPH_SHOW_AS = {"Free": "free", "Tentative": "tentative", "Busy": "busy", "OOF": "oof",
                  "WorkingElsewhere": "workingElsewhere", "NoData": "unknown"}


def graph_show_as(value: str) -> str:
    return _GRAPH_SHOW_AS.get(value, value)


def event_json(org: Organisation, mailbox: str, occ: OccurrenceView, zone: tzinfo, zone_name: str) -> dict[str, Any]:
    master = occ.master
    kind = {"single": "singleInstance", "occurrence": "occurrence", "exception": "exception"}[occ.kind]
    is_organizer = master.organizer_email.lower() == mailbox.lower()
    response = GRAPH_RESPONSES.get(own_response(master, mailbox), "none")
    # locations[]: each place of the Location line, then the places picked besides it (enhanced locations).
    parts = [p.strip() for p in occ.location.split(";") if p.strip()]
    parts += [p for p in master.locations if p not in parts]
    locations = [{"displayName": p, "locationType": "default", "uniqueId": p, "uniqueIdType": "private"}
                 for p in parts]
    zone_id = master.wire_timezone_id or master.windows_timezone_id
    join_url = f"https://teams.microsoft.com/l/meetup-join/{occ.item_id[-12:]}" if master.online_meeting else None
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{occ.change_key}"',
        "id": occ.item_id,
        "createdDateTime": "2026-01-01T00:00:00Z",
        "lastModifiedDateTime": "2026-01-01T00:00:00Z",
        "changeKey": occ.change_key,
        "categories": [],
        "transactionId": None,
        "originalStartTimeZone": zone_id,
        "originalEndTimeZone": zone_id,
        "iCalUId": occurrence_ical_uid(master.uid, occ.original_start) if master.has_uid else None,
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": occ.subject,
        "bodyPreview": "",
        "importance": "normal",
        "sensitivity": master.sensitivity,
        "isAllDay": master.is_all_day,
        "isCancelled": occ.is_cancelled,
        "isOrganizer": is_organizer,
        "responseRequested": True,
        "seriesMasterId": master.item_id if occ.kind != "single" else None,
        **({"showAs": graph_show_as(master.show_as)} if master.show_as else {}),
        "type": kind,
        "webLink": f"https://outlook.office365.com/owa/?itemid={occ.item_id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": master.online_meeting,
        "onlineMeetingProvider": "teamsForBusiness" if master.online_meeting else "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": response, "time": _NEVER},
        "body": body_json(master),
        "start": date_time_time_zone(occ.start, zone, zone_name),
        "end": date_time_time_zone(occ.end, zone, zone_name),
        "location": {"displayName": occ.location, "locationType": "default",
                     "uniqueId": occ.location, "uniqueIdType": "private"} if occ.location else
                    {"displayName": "", "locationType": "default", "uniqueIdType": "unknown",
                     "address": {}, "coordinates": {}},
        "locations": locations,
        "recurrence": None,
        # Exchange keeps required, optional and resource attendees apart (EWS lists them in three elements);
        # Graph's one list shows them in that order too, so both backends store the same attendee order.
        "attendees": [_attendee(org, a) for kind in ("required", "optional", "resource")
                      for a in master.attendees if a.kind == kind],
        "organizer": _recipient(org, master.organizer_email, master.organizer_name),
        "onlineMeeting": {"joinUrl": join_url} if join_url else None,
    }
    if occ.original_start is not None:
        body["originalStart"] = occ.original_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return body


def master_json(org: Organisation, mailbox: str, occ: OccurrenceView) -> dict[str, Any]:
    """A series master as GET /events/{id} shows it (only what the source asks for matters)."""
    master = occ.master
    return {"@odata.etag": f'W/"{master.change_key}"', "id": master.item_id, "changeKey": master.change_key,
            "iCalUId": master.uid if master.has_uid else None,
            "type": "seriesMaster" if master.is_recurring else "singleInstance",
            "subject": master.subject, "body": body_json(master),
            "organizer": _recipient(org, master.organizer_email, master.organizer_name)}


def body_json(master: MeetingRecord) -> dict[str, str]:
    return {"contentType": "html" if master.body_html else "text", "content": master.body}


def contact_json(contact: ContactRecord, folder_id: str) -> dict[str, Any]:
    """Graph v1.0 contacts have businessPhones, homePhones and mobilePhone only; fax and "other"
    numbers exist in Exchange but are not properties of the v1.0 contact resource."""
    business = [p.number for p in contact.phones if p.kind in ("business", "business2")]
    home = [p.number for p in contact.phones if p.kind in ("home", "home2")]
    mobile = next((p.number for p in contact.phones if p.kind == "mobile"), None)
    return {
        "@odata.type": "#microsoft.graph.contact",
        "@odata.etag": f'W/"{contact.change_key}"',
        "id": contact.item_id,
        "createdDateTime": "2026-01-01T00:00:00Z",
        "lastModifiedDateTime": "2026-01-01T00:00:00Z",
        "changeKey": contact.change_key,
        "categories": [],
        "parentFolderId": folder_id,
        "birthday": None,
        "fileAs": contact.file_as,
        "displayName": contact.display_name,
        "givenName": contact.given_name or None,
        "initials": None,
        "middleName": None,
        "nickName": None,
        "surname": contact.surname or None,
        "title": None,
        "yomiGivenName": None,
        "yomiSurname": None,
        "yomiCompanyName": None,
        "generation": None,
        "imAddresses": [],
        "jobTitle": contact.title or None,
        "companyName": contact.company or None,
        "department": None,
        "officeLocation": None,
        "profession": None,
        "businessHomePage": None,
        "assistantName": None,
        "manager": None,
        "homePhones": home,
        "mobilePhone": mobile,
        "businessPhones": business,
        "spouseName": None,
        "personalNotes": "",
        "children": [],
        "emailAddresses": [{"name": e, "address": e} for e in contact.emails],
        "homeAddress": {},
        "businessAddress": {},
        "otherAddress": {},
    }


def odd_item_json(item: OddItemRecord, folder_id: str) -> dict[str, Any] | None:
    """What Graph's contacts endpoints show of an odd item: nothing for a group, message or document (they
    return contacts only); a contact row with a field of the wrong type for "unreadable", one without an
    id for "malformed"."""
    if item.kind not in ("unreadable", "malformed"):
        return None
    row = contact_json(ContactRecord(item.item_id, item.change_key, item.display_name), folder_id)
    if item.kind == "malformed":
        del row["id"]
    else:
        row["emailAddresses"] = {"address": "not a list"}
    return row


def removed_json(odata_type: str, item_id: str, reason: str = "deleted") -> dict[str, Any]:
    return {"@odata.type": odata_type, "id": item_id, "@removed": {"reason": reason}}
