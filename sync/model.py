"""Plain data shared by the sources, the store and the planners.

These are the only shapes that cross from a source (EWS, Graph, a simulator) into the store. All
datetimes are timezone-aware UTC; a source converts before it builds these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


def utc_text(moment: datetime) -> str:
    """The one text form of an instant: UTC, whole seconds, sortable ("2026-11-27T09:00:00+00:00")."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pbxsync only handles timezone-aware instants")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# Exchange's own address forms: a legacyExchangeDN ("/o=ExchangeLabs/ou=.../cn=Recipients/cn=..."),
# and the same prefixed with its address type. An SMTP address never starts like this.
_INTERNAL_PREFIXES = ("/", "x500:", "ex:")


def is_internal_address(address: str) -> bool:
    """True for an address Exchange uses for its own users (X.500 / legacyExchangeDN) instead of SMTP,
    which a ResolveNames look-up turns into SMTP: anything without an "@", or in one of those forms.
    The one rule for it: the sync engine resolves exactly these, the directory matches them through the
    address cache. A blank address is no address at all."""
    text = address.strip().lower()
    return bool(text) and ("@" not in text or text.startswith(_INTERNAL_PREFIXES))


class Folder(StrEnum):
    CONTACTS = "contacts"
    CALENDAR = "calendar"


class PhoneKind(StrEnum):
    """What sort of line a number is; LDAP serves each kind under its attribute (plugin.ldap.build)."""

    BUSINESS = "business"
    MOBILE = "mobile"
    HOME = "home"
    FAX = "fax"
    PAGER = "pager"
    OTHER = "other"


class AttendeeKind(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    RESOURCE = "resource"


class Sensitivity(StrEnum):
    """How private an item is, as Exchange names it (EWS SensitivityChoicesType, Graph sensitivity)."""

    NORMAL = "normal"
    PERSONAL = "personal"
    PRIVATE = "private"
    CONFIDENTIAL = "confidential"


class ShowAs(StrEnum):
    """How an item shows its owner's time (EWS LegacyFreeBusyStatus, Graph showAs), lower-case.

    UNKNOWN: a value pbxsync cannot read (EWS NoData, a string Exchange may add later); a missing value
    is BUSY, as Exchange itself assumes for an appointment (EWS's default, Graph's default showAs).
    """

    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "workingelsewhere"
    UNKNOWN = "unknown"


_SHOW_AS = {s.value: s for s in ShowAs} | {"outofoffice": ShowAs.OOF, "nodata": ShowAs.UNKNOWN}


def show_as_from(value: object) -> ShowAs:
    """A source's show-as text (EWS "OOF", Graph "oof", "workingElsewhere", ...) -> ShowAs; hostile input
    (not text, an unknown word, a 10 MB string) gives UNKNOWN, nothing at all gives BUSY."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ShowAs.BUSY
    if not isinstance(value, str) or len(value) > 40:
        return ShowAs.UNKNOWN
    return _SHOW_AS.get(value.strip().lower(), ShowAs.UNKNOWN)


class ResponseType(StrEnum):
    """An attendee's answer, as Exchange names it (EWS ResponseTypeType, Graph responseStatus)."""

    UNKNOWN = "unknown"
    ORGANIZER = "organizer"
    TENTATIVE = "tentative"
    ACCEPT = "accept"
    DECLINE = "decline"
    NO_RESPONSE = "noresponse"


@dataclass(frozen=True)
class PhoneNumber:
    kind: PhoneKind
    raw: str
    e164: str | None  # "+49301234711" when parseable with the configured default region
    digits: str  # the dialled digits of `raw` (sync.phones), for contains-matching ("*4711*")


@dataclass(frozen=True)
class Contact:
    item_id: str
    change_key: str
    display_name: str
    given_name: str = ""
    surname: str = ""
    company: str = ""
    title: str = ""
    emails: tuple[str, ...] = ()
    phones: tuple[PhoneNumber, ...] = ()
    folder: str = ""  # path of its folder below the Contacts folder ("Suppliers/Berlin"); "" = Contacts itself


@dataclass(frozen=True)
class SkippedItem:
    """An item a source read but could not map (not a contact, malformed fields, a library error on it).

    It is skipped and reported; it never fails its folder. `reason` is one line pbxsync wrote (the kind
    of problem, never the item's content: a private meeting's subject must not leak through it).
    """

    folder: str  # where in the mailbox: the Exchange folder's path ("" = the default folder)
    item_id: str  # "" when Exchange sent none
    reason: str


@dataclass(frozen=True)
class Attendee:
    email: str  # lower-case SMTP or an internal X.500 address; "" when Exchange gave none
    name: str
    kind: AttendeeKind
    response: ResponseType


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a meeting as one mailbox sees it (a single meeting is its own occurrence)."""

    item_id: str
    change_key: str
    uid: str  # iCalendar UID (UID / iCalUId); the dedupe key across mailboxes
    start: datetime  # UTC
    end: datetime  # UTC
    timezone: str = "UTC"  # the organizer's original time zone id (IANA or Windows)
    recurrence_id: datetime | None = None  # original start of this occurrence in its series, UTC
    series_item_id: str = ""  # ItemId of the series master, so a master deletion removes its occurrences
    subject: str = ""
    location: str = ""
    organizer_email: str = ""
    organizer_name: str = ""
    attendees: tuple[Attendee, ...] = ()
    is_cancelled: bool = False
    is_all_day: bool = False
    sensitivity: Sensitivity = Sensitivity.NORMAL
    # The mailbox owner's own answer to the meeting (EWS MyResponseType, Graph responseStatus): a copy
    # forwarded to a PBX user says whether that user declined it.
    my_response: ResponseType = ResponseType.UNKNOWN
    show_as: ShowAs = ShowAs.BUSY  # how the mailbox owner's time shows during it (free/busy, presence)

    @property
    def occurrence_key(self) -> str:
        """Which occurrence of the meeting this is: RecurrenceId when recurring, else the start."""
        return utc_text(self.recurrence_id or self.start)


@dataclass(frozen=True)
class GroupMembers:
    """What an address invited to a meeting stands for when it is a group (a distribution group, a
    Microsoft 365 group, a mail-enabled security group): the people in it, nested groups flattened."""

    address: str  # the group's address, lower-case, as it was looked up
    name: str = ""
    members: tuple[str, ...] = ()  # lower-case SMTP addresses of the people in it, in Exchange's order
    complete: bool = True  # False: it has more members than the source was asked to read


@dataclass(frozen=True)
class ContactChanges:
    """One incremental contacts sync result. `complete` is False when paging was cut short."""

    upserts: tuple[Contact, ...] = ()
    deleted_item_ids: tuple[str, ...] = ()
    sync_state: str = ""
    complete: bool = True
    skipped: tuple[SkippedItem, ...] = ()


@dataclass(frozen=True)
class CalendarChanges:
    """What the calendar folder sync noticed since `sync_state` (items are series masters or singles)."""

    changed_item_ids: tuple[str, ...] = ()
    deleted_item_ids: tuple[str, ...] = ()
    sync_state: str = ""
    complete: bool = True
    skipped: tuple[SkippedItem, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.changed_item_ids or self.deleted_item_ids)


@dataclass(frozen=True)
class CalendarWindow:
    """Every occurrence in [start, end) of one mailbox, fetched completely, or the fetch failed.

    Complete means every item Exchange holds came back; one it returned but pbxsync could not map is in
    `skipped`, and the planner keeps what is stored for it (a skipped item never cancels a booking).
    """

    start: datetime
    end: datetime
    occurrences: tuple[Occurrence, ...] = field(default_factory=tuple)
    skipped: tuple[SkippedItem, ...] = ()
