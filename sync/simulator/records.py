"""The records a simulated mailbox holds: frozen values, replaced (never changed) on every change.

Item kinds live here in one place. A folder holds `Item`s; `FOLDER_OF` says which folder each kind lives
in. A new kind of item (a contact group, a message in a contacts folder, ...) is a record class here, a
member of `Item` and a row in `FOLDER_OF`; the data-file reader (`datafile`) and each protocol's rendering
(`ews_xml`, `graph_json`) then say how it is written and shown.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from pbxsync.sync.simulator.zones import resolve_timezone, windows_timezone_id

FolderName = Literal["contacts", "calendar"]
FOLDERS: tuple[FolderName, ...] = ("contacts", "calendar")
PHONE_KINDS = ("business", "business2", "mobile", "home", "home2", "fax", "other")
ATTENDEE_KINDS = ("required", "optional", "resource")
RESPONSES = ("unknown", "organizer", "tentative", "accept", "decline", "noresponse")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class User:
    email: str  # primary SMTP, lower-case
    name: str
    password: str
    legacy_dn: str  # X.500 / legacyExchangeDN, e.g. /o=Example/ou=Exchange/cn=Recipients/cn=alice
    can_impersonate: bool = False  # holds the ApplicationImpersonation role


@dataclass(frozen=True)
class Phone:
    kind: str  # one of PHONE_KINDS
    number: str


@dataclass(frozen=True)
class ContactRecord:
    item_id: str
    change_key: str
    display_name: str
    given_name: str = ""
    surname: str = ""
    company: str = ""
    title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[Phone, ...] = ()


@dataclass(frozen=True)
class AttendeeRecord:
    email: str
    name: str = ""
    kind: str = "required"  # one of ATTENDEE_KINDS
    response: str = "noresponse"  # one of RESPONSES


@dataclass(frozen=True)
class Recurrence:
    pattern: Literal["daily", "weekly"]
    interval: int = 1
    count: int | None = None
    until: date | None = None  # inclusive, in the meeting's time zone
    days: tuple[int, ...] = ()  # weekly: weekday numbers (0 = Monday); empty = the start's weekday


@dataclass(frozen=True)
class OccurrenceException:
    original_start: datetime  # aware, in the meeting's zone: which occurrence this changes
    cancelled: bool = False
    start: datetime | None = None  # moved to (aware)
    end: datetime | None = None
    subject: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class MeetingRecord:
    item_id: str
    change_key: str
    uid: str
    subject: str
    start: datetime  # aware, in `tz`
    end: datetime
    timezone_id: str  # as given: IANA ("Europe/Berlin") or Windows ("W. Europe Standard Time")
    location: str = ""
    organizer_email: str = ""
    organizer_name: str = ""
    attendees: tuple[AttendeeRecord, ...] = ()
    is_all_day: bool = False
    is_cancelled: bool = False
    recurrence: Recurrence | None = None
    exceptions: tuple[OccurrenceException, ...] = ()
    wire_timezone_id: str = ""  # testing only: a (possibly bogus) zone id a server sends instead

    @property
    def tz(self) -> ZoneInfo:
        return resolve_timezone(self.timezone_id)

    @property
    def iana_timezone_id(self) -> str:
        return self.tz.key

    @property
    def windows_timezone_id(self) -> str:
        return windows_timezone_id(self.timezone_id)

    @property
    def is_recurring(self) -> bool:
        return self.recurrence is not None

    def exception_for(self, original_start: datetime) -> OccurrenceException | None:
        return next((e for e in self.exceptions if e.original_start == original_start), None)


@dataclass(frozen=True)
class OccurrenceView:
    """One entry of a calendar view: a single meeting, or one occurrence of a series."""

    item_id: str
    change_key: str
    kind: Literal["single", "occurrence", "exception"]
    master: MeetingRecord
    start: datetime  # aware (meeting zone)
    end: datetime
    original_start: datetime | None  # RecurrenceId; None for singles
    subject: str
    location: str

    @property
    def is_cancelled(self) -> bool:
        return self.master.is_cancelled


# ---------------------------------------------------------------- item kinds

Item: TypeAlias = ContactRecord | MeetingRecord  # every kind of item a folder holds
FOLDER_OF: dict[type[Item], FolderName] = {ContactRecord: "contacts", MeetingRecord: "calendar"}


def copy_holders(meeting: MeetingRecord, mailboxes: Container[str]) -> list[str]:
    """Where Outlook puts a meeting: the organizer's and every attendee's mailbox among `mailboxes`
    (lower-case addresses), each once, organizer first."""
    holders: list[str] = []
    for address in [meeting.organizer_email, *(a.email for a in meeting.attendees)]:
        key = address.lower()
        if key in mailboxes and key not in holders:
            holders.append(key)
    return holders
