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
# Every EWS PhoneNumbers key has a kind here (ews_xml.PHONE_KEYS); Graph shows business*, home* and mobile.
PHONE_KINDS = ("business", "business2", "mobile", "home", "home2", "fax", "other", "company", "car", "radio",
               "assistant", "callback", "primary", "pager", "isdn", "telex", "tty", "home_fax", "other_fax")
# Items a contacts folder holds besides contacts, as real mailboxes do (docs/exchange-ews.md).
ODD_ITEM_KINDS = ("group", "message", "document", "unreadable", "malformed")
CONTACT_FOLDER_CLASS = "IPF.Contact"
ATTENDEE_KINDS = ("required", "optional", "resource")
RESPONSES = ("unknown", "organizer", "tentative", "accept", "decline", "noresponse")
SENSITIVITIES = ("normal", "personal", "private", "confidential")
CUSTOM_TIMEZONE = "Customized Time Zone"  # what Exchange calls a time zone given by its rules, not an id
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
    file_as: str = ""
    folder: str = ""  # the contacts folder's id; "" = the default Contacts folder


@dataclass(frozen=True)
class OddItemRecord:
    """An item in a contacts folder that is no plain contact: a contact group ("group", EWS
    DistributionList), a message or a document filed there, a contact the Exchange library cannot parse
    ("unreadable") or one without an id ("malformed"). Each protocol renders it as its server would."""

    item_id: str
    change_key: str
    kind: str  # one of ODD_ITEM_KINDS
    display_name: str
    members: tuple[str, ...] = ()  # a group's member addresses
    folder: str = ""


@dataclass(frozen=True)
class ContactFolderRecord:
    """A folder below a mailbox's Contacts folder: the user's own sub-folder, or one of Exchange's hidden
    ones (a FolderClass other than IPF.Contact, e.g. IPF.Contact.RecipientCache)."""

    folder_id: str
    name: str
    parent_id: str = ""  # "" = directly below the default Contacts folder
    folder_class: str = CONTACT_FOLDER_CLASS

    @property
    def is_phonebook(self) -> bool:
        """What a client lists as a contacts folder (Graph's contactFolders shows only these)."""
        return self.folder_class.lower() == CONTACT_FOLDER_CLASS.lower()


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
    # What real calendars hold besides (issue 12; docs/exchange-ews.md, data file):
    sensitivity: str = "normal"  # one of SENSITIVITIES
    locations: tuple[str, ...] = ()  # places picked in Outlook's location picker besides the Location line
    online_meeting: bool = False  # a Teams meeting (join link)
    has_uid: bool = True  # False: copied with "Copy to My Calendar" (no UID / iCalUId on the wire)
    my_response: str = ""  # this copy's owner's own answer; "" = as the attendee list says (own_response)
    # Show-as as the server sends it, verbatim (EWS LegacyFreeBusyStatus "Busy"/"OOF"/..., rendered as Graph
    # showAs in Graph's spelling); "" leaves the element out; any other string is sent as it is (messy data).
    show_as: str = "Busy"
    body: str = ""  # the meeting's body (the invitation text), HTML or plain text as `body_html` says
    body_html: bool = True

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

Item: TypeAlias = ContactRecord | OddItemRecord | MeetingRecord  # every kind of item a folder holds
FOLDER_OF: dict[type[Item], FolderName] = {ContactRecord: "contacts", OddItemRecord: "contacts",
                                           MeetingRecord: "calendar"}


def folder_key(record: Item) -> str:
    """The change log an item lives in: "contacts", "calendar", or "contacts:<folder id>" for an item
    in a sub-folder of Contacts."""
    sub = record.folder if isinstance(record, ContactRecord | OddItemRecord) else ""
    return f"{FOLDER_OF[type(record)]}:{sub}" if sub else FOLDER_OF[type(record)]


def contact_folder_key(folder_id: str) -> str:
    return f"contacts:{folder_id}" if folder_id else "contacts"


def own_response(meeting: MeetingRecord, mailbox: str) -> str:
    """The answer of the mailbox's owner to the copy it holds (EWS MyResponseType, Graph responseStatus)."""
    if meeting.my_response:
        return meeting.my_response
    box = mailbox.lower()
    if meeting.organizer_email.lower() == box:
        return "organizer"
    own = next((a for a in meeting.attendees if a.email.lower() == box), None)
    return own.response if own is not None else "unknown"


def copy_holders(meeting: MeetingRecord, mailboxes: Container[str]) -> list[str]:
    """Where Outlook puts a meeting: the organizer's and every attendee's mailbox among `mailboxes`
    (lower-case addresses), each once, organizer first."""
    holders: list[str] = []
    for address in [meeting.organizer_email, *(a.email for a in meeting.attendees)]:
        key = address.lower()
        if key in mailboxes and key not in holders:
            holders.append(key)
    return holders
