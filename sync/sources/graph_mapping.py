"""Microsoft Graph JSON -> sync.model dataclasses. Pure functions; every value is hostile until checked.

Shapes follow Microsoft's published `event`, `contact` and delta responses (Graph v1.0). A value we
cannot trust raises `SourceDataError` naming the item, never guessing: a half-understood meeting must
not become a booking, and a failed fetch never deletes anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.model import (
    Attendee,
    AttendeeKind,
    Contact,
    Occurrence,
    PhoneKind,
    PhoneNumber,
    ResponseType,
    Sensitivity,
    show_as_from,
)
from pbxsync.sync.sources.contact_fields import (
    GRAPH_PHONE_LISTS,
    GRAPH_PHONE_SINGLES,
    MAX_CONTACT_TEXT,
    contact_email,
    contact_text,
    display_name,
)
from pbxsync.sync.sources.locations import join_locations
from pbxsync.sync.sources.writer import ItemBody

PhoneBuilder = Callable[[PhoneKind, str], PhoneNumber | None]  # sync.phones.normalise_phone + region

MAX_TEXT = 1024  # as the EWS source: names, subjects, locations are cut here (displayed, dialled)
MAX_ID_LENGTH = 1024  # Graph ids are ~150 characters; anything far longer is not an id

# Graph responseType -> the EWS ResponseTypeType names the model uses (one to one, same meaning).
_RESPONSES = {
    "none": ResponseType.UNKNOWN,
    "organizer": ResponseType.ORGANIZER,
    "tentativelyaccepted": ResponseType.TENTATIVE,
    "accepted": ResponseType.ACCEPT,
    "declined": ResponseType.DECLINE,
    "notresponded": ResponseType.NO_RESPONSE,
}
_ATTENDEE_KINDS = {
    "required": AttendeeKind.REQUIRED,
    "optional": AttendeeKind.OPTIONAL,
    "resource": AttendeeKind.RESOURCE,
}
_SENSITIVITIES = {s.value: s for s in Sensitivity}
EVENT_TYPES = frozenset({"singleInstance", "occurrence", "exception", "seriesMaster"})
_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True)
class Removed:
    """A delta row carrying `@removed`: the item left the collection (deleted, or moved out of view)."""

    item_id: str
    reason: str


def is_removed(row: Mapping[str, Any]) -> bool:
    return "@removed" in row


def removed_row(row: Mapping[str, Any]) -> Removed:
    marker = row.get("@removed")
    reason = marker.get("reason", "") if isinstance(marker, dict) else ""
    return Removed(_item_id(row), reason if isinstance(reason, str) else "")


def _item_id(row: Mapping[str, Any]) -> str:
    value = row.get("id")
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise SourceDataError("Graph sent an item without a usable id")
    return value


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    """Printable, bounded text; control characters become spaces (the same rule as the EWS source,
    so both backends store the same strings)."""
    return "".join(ch if ch.isprintable() else " " for ch in value[:limit]).strip()


def _text(row: Mapping[str, Any], key: str, item_id: str, limit: int = MAX_TEXT) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SourceDataError(f"Graph item {item_id[:40]}: {key} is not text")
    return clean_text(value, limit)


def _bool(row: Mapping[str, Any], key: str, item_id: str) -> bool:
    value = row.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SourceDataError(f"Graph item {item_id[:40]}: {key} is not a boolean")
    return value


def _object(row: Mapping[str, Any], key: str, item_id: str) -> Mapping[str, Any]:
    value = row.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SourceDataError(f"Graph item {item_id[:40]}: {key} is not an object")
    return value


def _list(row: Mapping[str, Any], key: str, item_id: str) -> list[Any]:
    value = row.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceDataError(f"Graph item {item_id[:40]}: {key} is not a list")
    return value


def zone_for(name: str) -> ZoneInfo:
    """An IANA zone for a Graph time zone name (Windows names like "W. Europe Standard Time" or IANA)."""
    if name in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc"):
        return ZoneInfo("UTC")
    iana = MS_TIMEZONE_TO_IANA_MAP.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceDataError(f"unknown time zone {name[:64]!r}") from None


def parse_date_time_time_zone(value: object, what: str) -> datetime:
    """A Graph dateTimeTimeZone ({"dateTime": "2017-04-15T12:00:00.0000000", "timeZone": "..."}) in UTC."""
    if not isinstance(value, dict):
        raise SourceDataError(f"{what}: not a dateTimeTimeZone object")
    text, zone = value.get("dateTime"), value.get("timeZone") or "UTC"
    if not isinstance(text, str) or not isinstance(zone, str) or len(text) > 40:
        raise SourceDataError(f"{what}: dateTime/timeZone missing or not text")
    # Graph sends 7 fractional digits; Python wants at most 6, and whole seconds are what we keep.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6], text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SourceDataError(f"{what}: {text[:40]!r} is not a date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_for(zone))
    return moment.astimezone(UTC).replace(microsecond=0)


def parse_offset_date_time(value: object, what: str) -> datetime:
    """A Graph DateTimeOffset ("2017-04-21T17:00:00Z") in UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise SourceDataError(f"{what}: not a date-time text")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6], value.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SourceDataError(f"{what}: {value[:40]!r} is not a date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _email_address(value: object, item_id: str) -> tuple[str, str]:
    """(address lower-case, name) from a Graph recipient {"emailAddress": {"name", "address"}}."""
    if not isinstance(value, dict):
        raise SourceDataError(f"Graph item {item_id[:40]}: recipient is not an object")
    inner = _object(value, "emailAddress", item_id)
    return _text(inner, "address", item_id, 320).lower(), _text(inner, "name", item_id)


def joined_location(event: Mapping[str, Any], item_id: str) -> str:
    """location.displayName as Outlook wrote it, plus any locations[] entry it does not already list."""
    names: list[str] = []
    for entry in _list(event, "locations", item_id):
        if not isinstance(entry, dict):
            raise SourceDataError(f"Graph item {item_id[:40]}: a locations entry is not an object")
        names.append(_text(entry, "displayName", item_id))
    return join_locations(_text(_object(event, "location", item_id), "displayName", item_id), names, MAX_TEXT)


def zone_label(name: str) -> str:
    """The organizer's zone as stored: the name when it is a zone pbxsync knows, else "UTC". Times are
    read in UTC either way (Prefer: outlook.timezone="UTC"); a custom zone ("Customized Time Zone")
    changes no instant. EWS stores the same labels (exchangelib gives no zone for an unknown id)."""
    try:
        zone = zone_for(name)
    except SourceDataError:
        return "UTC"
    return "UTC" if zone.key == "UTC" else name


def _sensitivity(event: Mapping[str, Any], item_id: str) -> Sensitivity:
    """An unknown value counts as private: a level Exchange may add later is hardly a more public one."""
    text = _text(event, "sensitivity", item_id, 40).lower()
    return _SENSITIVITIES.get(text, Sensitivity.PRIVATE) if text else Sensitivity.NORMAL


def event_to_occurrence(event: Mapping[str, Any], series_uid: str | None = None) -> Occurrence:
    """One calendarView event (singleInstance, occurrence or exception) as an Occurrence.

    Graph gives every occurrence of a series its own iCalUId; the meeting's UID (the dedupe key, as EWS
    reports it) is the series master's iCalUId, which the caller looks up and passes as `series_uid`.
    An event without iCalUId (copied with "Copy to My Calendar") gets uid "": the booking side then keys
    it by its item id (its series master's id for an occurrence), a stable key.
    """
    item_id = _item_id(event)
    kind = _text(event, "type", item_id) or "singleInstance"
    if kind not in EVENT_TYPES:
        raise SourceDataError(f"Graph event {item_id[:40]}: unknown type {kind[:30]!r}")
    if kind == "seriesMaster":
        raise SourceDataError(f"Graph event {item_id[:40]}: a series master is not an occurrence")
    in_series = kind in ("occurrence", "exception")
    uid = clean_text(series_uid, 2048) if in_series and series_uid is not None else _text(
        event, "iCalUId", item_id, 2048)
    start = parse_date_time_time_zone(event.get("start"), f"Graph event {item_id[:40]} start")
    end = parse_date_time_time_zone(event.get("end"), f"Graph event {item_id[:40]} end")
    if end < start:
        raise SourceDataError(f"Graph event {item_id[:40]}: ends before it starts")
    recurrence_id: datetime | None = None
    series_item_id = ""
    if in_series:
        series_item_id = _text(event, "seriesMasterId", item_id)
        if not series_item_id:
            raise SourceDataError(f"Graph event {item_id[:40]}: {kind} without seriesMasterId")
        original = event.get("originalStart")
        recurrence_id = (parse_offset_date_time(original, f"Graph event {item_id[:40]} originalStart")
                         if original is not None else start)
    organizer_email, organizer_name = _email_address(event.get("organizer") or {}, item_id)
    attendees = tuple(_attendee(a, item_id) for a in _list(event, "attendees", item_id))
    timezone = zone_label(_text(event, "originalStartTimeZone", item_id, 128)
                          or _text(_object(event, "start", item_id), "timeZone", item_id, 128) or "UTC")
    own = _text(_object(event, "responseStatus", item_id), "response", item_id).lower()
    return Occurrence(
        item_id=item_id,
        change_key=_text(event, "changeKey", item_id),
        uid=uid,
        start=start,
        end=end,
        timezone=timezone,
        recurrence_id=recurrence_id,
        series_item_id=series_item_id,
        subject=_text(event, "subject", item_id),
        location=joined_location(event, item_id),
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        attendees=attendees,
        is_cancelled=_bool(event, "isCancelled", item_id),
        is_all_day=_bool(event, "isAllDay", item_id),
        sensitivity=_sensitivity(event, item_id),
        my_response=_RESPONSES.get(own, ResponseType.UNKNOWN),
        show_as=show_as_from(event.get("showAs")),
    )


def _attendee(value: object, item_id: str) -> Attendee:
    email, name = _email_address(value, item_id)
    assert isinstance(value, dict)  # checked by _email_address
    kind = _ATTENDEE_KINDS.get(_text(value, "type", item_id).lower(), AttendeeKind.REQUIRED)
    response = _text(_object(value, "status", item_id), "response", item_id).lower()
    return Attendee(email=email, name=name, kind=kind, response=_RESPONSES.get(response, ResponseType.UNKNOWN))


def _contact_text(row: Mapping[str, Any], key: str, item_id: str) -> str:
    value = row.get(key)
    if value is not None and not isinstance(value, str):
        raise SourceDataError(f"Graph contact {item_id[:40]}: {key} is not text")
    return contact_text(value, MAX_CONTACT_TEXT)


def contact_to_model(contact: Mapping[str, Any], phone: PhoneBuilder, folder: str = "") -> Contact:
    """A Graph contact as a Contact (names by sync.sources.contact_fields, as over EWS); phones in
    Graph's order: business, home, mobile. `folder`: the path of its folder below Contacts."""
    item_id = _item_id(contact)
    emails: list[str] = []
    for entry in _list(contact, "emailAddresses", item_id):
        if not isinstance(entry, dict):
            raise SourceDataError(f"Graph contact {item_id[:40]}: an emailAddresses entry is not an object")
        address = entry.get("address")
        if address is not None and not isinstance(address, str):
            raise SourceDataError(f"Graph contact {item_id[:40]}: an e-mail address is not text")
        if contact_email(address):
            emails.append(contact_email(address))
    phones: list[PhoneNumber] = []
    for key, kind in GRAPH_PHONE_LISTS:
        for raw in _list(contact, key, item_id):
            if not isinstance(raw, str):
                raise SourceDataError(f"Graph contact {item_id[:40]}: {key} holds a non-text value")
            number = phone(kind, raw)
            if number is not None:
                phones.append(number)
    for key, kind in GRAPH_PHONE_SINGLES:
        raw = contact.get(key)
        if raw is not None and not isinstance(raw, str):
            raise SourceDataError(f"Graph contact {item_id[:40]}: {key} is not text")
        number = phone(kind, raw) if raw else None
        if number is not None:
            phones.append(number)
    given, surname = _contact_text(contact, "givenName", item_id), _contact_text(contact, "surname", item_id)
    company = _contact_text(contact, "companyName", item_id)
    return Contact(
        item_id=item_id,
        change_key=_text(contact, "changeKey", item_id),
        display_name=display_name(_contact_text(contact, "displayName", item_id),
                                  _contact_text(contact, "fileAs", item_id), given, surname, company, tuple(emails)),
        given_name=given,
        surname=surname,
        company=company,
        title=_contact_text(contact, "jobTitle", item_id),
        emails=tuple(emails),
        phones=tuple(phones),
        folder=folder,
    )


def event_body(item_id: str, event: Mapping[str, Any]) -> ItemBody | None:
    """An event's body with its changeKey (None: either is missing or not text)."""
    body, change_key = event.get("body"), event.get("changeKey")
    if not isinstance(body, dict) or not isinstance(body.get("content"), str) or not isinstance(change_key, str):
        return None
    return ItemBody(item_id, change_key, body["content"], str(body.get("contentType")).lower() != "text")
