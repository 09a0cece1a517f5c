"""The simulated Exchange organisation: users, their mailboxes, and a change log — protocol-neutral.

Every simulated server (EWS SOAP in `sync.simulator.ews_server`, Graph REST later) serves views of ONE
`Organisation`. This module knows nothing about XML or JSON on the wire; it only holds data, expands
recurring series, keeps per-folder change logs, and carries injected faults and request counters.

How to build another protocol view on it (e.g. Graph):

- `Organisation.load_file(path, now=...)` / `Organisation.from_dict(data, now=...)` build it from the
  JSON data file (format documented in docs/exchange-ews.md). Invalid files raise `DataFileError`
  listing every problem with its JSON path. `now` is injectable: relative times ("now+20s",
  "today+1d 09:00") are resolved against it at load time.
- `org.authenticate(email, password) -> User | None`; `org.user(email)`; `org.may_impersonate(actor)`.
- Read access is by snapshot: `org.contacts(mailbox)`, `org.meetings(mailbox)` return tuples of frozen
  records (`ContactRecord`, `MeetingRecord`). A vanished or unknown mailbox raises `NoSuchMailbox`.
- `org.calendar_view(mailbox, start, end)` expands series into `OccurrenceView`s overlapping
  [start, end): singles (kind "single"), generated occurrences ("occurrence") and moved ones
  ("exception"); cancelled occurrences are left out; a meeting cancelled as a whole is included with
  `is_cancelled=True` (that is what attendee copies look like). Occurrence ids are distinct from the
  master id and stable: `occurrence_item_id(master_id, original_start)`; `org.calendar_item(mailbox, id)`
  resolves either kind of id back to a record or occurrence view.
- Recurrence happens in the meeting's own time zone (wall-clock), so DST is right; `MeetingRecord.tz` is
  the ZoneInfo, `timezone_id` the id as given (IANA or Windows), `windows_timezone_id` / `iana_timezone_id`
  both spellings (EWS wants Windows ids, Graph accepts both).
- Incremental sync: `org.changes_since(mailbox, folder, seq, max_changes)` -> `ChangePage` with
  create/update/delete `Change`s (deletes carry only the item id), the new `seq` and `includes_last`.
  `encode_sync_state` / `decode_sync_state` turn (mailbox, folder, seq) into an opaque token bound to the
  mailbox and folder (Graph can use the same for deltaLink tokens).
- Mutations (thread-safe; each bumps the item's change key and appends to its folder's change log):
  `add_meeting`, `move_meeting`, `cancel_meeting`, `delete_meeting`, `move_occurrence`,
  `cancel_occurrence`, `update_meeting`, `add_contact`, `update_contact`, `delete_contact`,
  `remove_mailbox`. Meetings given at top level of the data file (or added with `mailboxes=None`) are
  placed, as Outlook does, in the organizer's mailbox and in every attendee's mailbox that belongs to a
  user, each copy with its own item id and the same UID.
- Faults: `org.inject_fault(Fault(...), operation=None, mailbox=None, times=1)`; a server calls
  `org.take_fault(operation, mailbox)` at the start of each request and renders the fault its own way.
  Operation names are the server's own ("SyncFolderItems", "GetItem", "delta" ...); None matches all.
- Counters: `org.counters.count(operation, mailbox)`, `org.counters.by_operation()`,
  `org.counters.by_mailbox()`, `org.counters.reset()`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP

from pbxsync.sync.errors import UserError

FolderName = Literal["contacts", "calendar"]
FOLDERS: tuple[FolderName, ...] = ("contacts", "calendar")
PHONE_KINDS = ("business", "business2", "mobile", "home", "home2", "fax", "other")
ATTENDEE_KINDS = ("required", "optional", "resource")
RESPONSES = ("unknown", "organizer", "tentative", "accept", "decline", "noresponse")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_EXPANDED_OCCURRENCES = 5000  # per series and view; a guard against "daily forever" over a long window


class DataFileError(UserError):
    """The simulator's data file is invalid; lists every problem with its JSON path."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        where = f"{source}: " if source else ""
        head = problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n  " + "\n  ".join(problems)
        super().__init__(where + head)


class NoSuchMailbox(LookupError):
    """The mailbox does not exist (never did, or was removed while running)."""


class NoSuchItem(LookupError):
    """No item with that id in that mailbox."""


# ---------------------------------------------------------------- records (frozen; replaced on change)


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


# ---------------------------------------------------------------- time zones and relative times


def resolve_timezone(zone_id: str) -> ZoneInfo:
    """IANA or Windows zone id -> ZoneInfo; ValueError for an unknown id."""
    iana = MS_TIMEZONE_TO_IANA_MAP.get(zone_id, zone_id)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone_id!r} (use an IANA or Windows zone id)") from None


def windows_timezone_id(zone_id: str) -> str:
    if zone_id in MS_TIMEZONE_TO_IANA_MAP:
        return zone_id
    key = resolve_timezone(zone_id).key
    mapped = IANA_TO_MS_TIMEZONE_MAP.get(key)
    return mapped[0] if mapped else "UTC"


_OFFSET_RE = re.compile(r"([+-])(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NOW_RE = re.compile(r"^now((?:[+-]\d+[smhdw])*)$")
_TODAY_RE = re.compile(r"^today((?:[+-]\d+[dw])*)(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _offset(text: str) -> timedelta:
    total = 0
    for sign, amount, unit in _OFFSET_RE.findall(text):
        total += (1 if sign == "+" else -1) * int(amount) * _UNIT_SECONDS[unit]
    return timedelta(seconds=total)


def parse_time(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """A data-file time -> aware datetime in `tz`.

    "now", "now+20s", "now-1h+30m": an instant relative to `now`.
    "today 09:00", "today+1d 09:00", "today-2d": a wall-clock time in `tz` on a day relative to today.
    "2026-11-27T09:00" (wall clock in `tz`), "2026-11-27T08:00:00Z" / "+01:00" (an instant),
    "2026-11-27" (midnight in `tz`).
    """
    text = text.strip()
    if m := _NOW_RE.match(text):
        return (now + _offset(m[1])).astimezone(tz).replace(microsecond=0)
    if m := _TODAY_RE.match(text):
        day = now.astimezone(tz).date() + _offset(m[1])
        wall = time(int(m[2] or 0), int(m[3] or 0), int(m[4] or 0))
        if m[2] is not None and not (0 <= int(m[2]) < 24):
            raise ValueError(f"bad hour in {text!r}")
        return datetime.combine(day, wall, tz)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {text!r}: use ISO 8601, 'now+20s' or 'today+1d 09:00'") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed.astimezone(tz)


# ---------------------------------------------------------------- ids, change keys, sync states


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def make_item_id(*parts: str) -> str:
    """A stable, Exchange-looking opaque item id derived from `parts`."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return "AAMkAD" + _b64(digest[:30])


def occurrence_item_id(master_id: str, original_start: datetime) -> str:
    stamp = original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return "AAMkOC" + _b64(f"{master_id}|{stamp}".encode())


def parse_occurrence_item_id(item_id: str) -> tuple[str, datetime] | None:
    if not item_id.startswith("AAMkOC"):
        return None
    try:
        master, stamp = base64.b64decode(item_id[6:], validate=True).decode("utf-8").rsplit("|", 1)
        return master, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return None


def make_change_key(seq: int) -> str:
    return "CQAAAB" + _b64(seq.to_bytes(8, "big"))


def encode_sync_state(mailbox: str, folder: str, seq: int) -> str:
    return _b64(f"pbxsim1|{mailbox}|{folder}|{seq}".encode())


def decode_sync_state(token: str, mailbox: str, folder: str) -> int:
    """The sequence number in `token`; ValueError if it is not ours or for another mailbox/folder."""
    if not token:
        return 0
    try:
        tag, box, fold, seq = base64.b64decode(token, validate=True).decode("utf-8").split("|")
        number = int(seq)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid sync state") from None
    if tag != "pbxsim1" or box != mailbox or fold != folder or number < 0:
        raise ValueError("sync state belongs to another folder")
    return number


# ---------------------------------------------------------------- recurrence expansion


def _series_starts(meeting: MeetingRecord, until_utc: datetime) -> Iterator[datetime]:
    """Original starts of a series (aware, in the meeting zone), in order, up to `until_utc`."""
    rec = meeting.recurrence
    assert rec is not None
    tz = meeting.tz
    first = meeting.start.astimezone(tz)
    wall = first.timetz().replace(tzinfo=None)
    for produced, day in enumerate(_recurrence_days(rec, first.date())):
        if (rec.count and produced >= rec.count) or produced >= MAX_EXPANDED_OCCURRENCES:
            return
        if rec.until and day > rec.until:
            return
        moment = datetime.combine(day, wall, tz)
        if moment.astimezone(UTC) >= until_utc:
            return
        yield moment


def _recurrence_days(rec: Recurrence, first: date) -> Iterator[date]:
    """Every day the pattern names from `first` on, endlessly; the caller applies until/count/window."""
    if rec.pattern == "daily":
        day = first
        while True:
            yield day
            day += timedelta(days=rec.interval)
    weekdays = sorted(rec.days or (first.weekday(),))
    week_start = first - timedelta(days=first.weekday())
    while True:
        for weekday in weekdays:
            day = week_start + timedelta(days=weekday)
            if day >= first:
                yield day
        week_start += timedelta(weeks=rec.interval)


def expand(meeting: MeetingRecord, start: datetime, end: datetime) -> list[OccurrenceView]:
    """The meeting's entries overlapping [start, end) (aware datetimes)."""
    if meeting.recurrence is None:
        if meeting.start < end and meeting.end > start:
            return [OccurrenceView(meeting.item_id, meeting.change_key, "single", meeting, meeting.start,
                                   meeting.end, None, meeting.subject, meeting.location)]
        return []
    duration = meeting.end - meeting.start
    # an occurrence moved earlier can fall into the window although its original start lies after it
    pulled_forward = max((e.original_start - e.start for e in meeting.exceptions if e.start),
                         default=timedelta())
    horizon = end.astimezone(UTC) + max(timedelta(), pulled_forward)
    out: list[OccurrenceView] = []
    for original in _series_starts(meeting, horizon):
        exc = meeting.exception_for(original)
        if exc and exc.cancelled:
            continue
        occ_start = exc.start if exc and exc.start else original
        occ_end = exc.end if exc and exc.end else occ_start + duration
        if not (occ_start < end and occ_end > start):
            continue
        digest = hashlib.sha256(f"{meeting.change_key}|{original.isoformat()}".encode()).digest()
        out.append(OccurrenceView(
            item_id=occurrence_item_id(meeting.item_id, original),
            change_key="CQAAAC" + _b64(digest[:9]),
            kind="exception" if exc else "occurrence",
            master=meeting,
            start=occ_start,
            end=occ_end,
            original_start=original,
            subject=exc.subject if exc and exc.subject is not None else meeting.subject,
            location=exc.location if exc and exc.location is not None else meeting.location,
        ))
    return out


def series_occurrence(meeting: MeetingRecord, original_start_utc: datetime) -> OccurrenceView | None:
    """The (not cancelled) occurrence of a series whose original start is `original_start_utc`."""
    if meeting.recurrence is None:
        return None
    for original in _series_starts(meeting, original_start_utc + timedelta(seconds=1)):
        if original.astimezone(UTC) == original_start_utc.astimezone(UTC):
            exc = meeting.exception_for(original)
            lo = exc.start if exc and exc.start else original
            hi = (exc.end if exc and exc.end else lo + (meeting.end - meeting.start))
            found = expand(meeting, lo, hi + timedelta(seconds=1))
            return next((o for o in found if o.original_start == original), None)
    return None


# ---------------------------------------------------------------- faults and counters


@dataclass(frozen=True)
class Fault:
    """A failure a server renders on its protocol.

    kind: "server_busy" (back_off_ms), "access_denied", "nonexistent_mailbox", "unauthorized" (HTTP 401),
    "http_status" (status), "malformed" (a truncated/garbled body), "raw" (send `body` as is),
    "duplicate_items" (every item in the response twice).
    """

    kind: str
    back_off_ms: int = 0
    status: int = 500
    body: bytes = b""


@dataclass
class _FaultRule:
    fault: Fault
    operation: str | None
    mailbox: str | None
    remaining: int  # < 0 = forever


class RequestCounters:
    """Requests served, by operation and by (operation, mailbox). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_op: Counter[str] = Counter()
        self._by_op_mailbox: Counter[tuple[str, str]] = Counter()

    def count(self, operation: str, mailbox: str = "") -> None:
        with self._lock:
            self._by_op[operation] += 1
            self._by_op_mailbox[(operation, mailbox.lower())] += 1

    def by_operation(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_op)

    def by_mailbox(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._by_op_mailbox)

    def get(self, operation: str, mailbox: str | None = None) -> int:
        with self._lock:
            if mailbox is None:
                return self._by_op[operation]
            return self._by_op_mailbox[(operation, mailbox.lower())]

    def reset(self) -> None:
        with self._lock:
            self._by_op.clear()
            self._by_op_mailbox.clear()


# ---------------------------------------------------------------- change log


@dataclass(frozen=True)
class Change:
    kind: Literal["create", "update", "delete"]
    item_id: str
    record: ContactRecord | MeetingRecord | None  # None for deletes: only the id travels


@dataclass(frozen=True)
class ChangePage:
    changes: tuple[Change, ...]
    seq: int  # the state after this page
    includes_last: bool


@dataclass
class _Entry:
    record: ContactRecord | MeetingRecord
    created_seq: int
    changed_seq: int


@dataclass
class _Folder:
    items: dict[str, _Entry] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (created, deleted)


@dataclass
class _Mailbox:
    folders: dict[str, _Folder] = field(default_factory=lambda: {f: _Folder() for f in FOLDERS})


# ---------------------------------------------------------------- the organisation


class Organisation:
    """Users, mailboxes, faults and counters. Every public method is thread-safe."""

    def __init__(self, users: Iterable[User] = (), domain: str = "example.com") -> None:
        self._lock = threading.RLock()
        self._seq = 0
        self._users: dict[str, User] = {}
        self._mailboxes: dict[str, _Mailbox] = {}
        self._faults: list[_FaultRule] = []
        self.counters = RequestCounters()
        self.domain = domain
        for user in users:
            self.add_user(user)

    # ---- loading

    @classmethod
    def load_file(cls, path: str | Path, now: datetime | None = None) -> Organisation:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataFileError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataFileError([f"not valid JSON: {exc}"], str(path)) from None
        return cls.from_dict(data, now=now, source=str(path))

    @classmethod
    def from_dict(cls, data: object, now: datetime | None = None, source: str = "") -> Organisation:
        return _Loader(now or datetime.now(UTC)).load(data, source)

    # ---- users

    def add_user(self, user: User) -> None:
        with self._lock:
            key = user.email.lower()
            self._users[key] = replace(user, email=key)
            self._mailboxes.setdefault(key, _Mailbox())

    def users(self) -> tuple[User, ...]:
        with self._lock:
            return tuple(self._users.values())

    def user(self, email: str) -> User | None:
        with self._lock:
            return self._users.get(email.lower())

    def user_by_legacy_dn(self, legacy_dn: str) -> User | None:
        with self._lock:
            return next((u for u in self._users.values() if u.legacy_dn.lower() == legacy_dn.lower()), None)

    def authenticate(self, username: str, password: str) -> User | None:
        """Accepts the SMTP address or the local part (DOMAIN\\user and user@domain forms too)."""
        name = username.lower().split("\\")[-1]
        with self._lock:
            user = self._users.get(name) or self._users.get(f"{name}@{self.domain}")
            if user is None and "@" not in name:
                user = next((u for u in self._users.values() if u.email.split("@")[0] == name), None)
        if user is None or not _constant_time_equal(user.password, password):
            return None
        return user

    def may_impersonate(self, actor: User) -> bool:
        return actor.can_impersonate

    def has_mailbox(self, email: str) -> bool:
        with self._lock:
            return email.lower() in self._mailboxes

    def remove_mailbox(self, email: str) -> None:
        """The mailbox vanishes (user deleted or moved away); its user can still log in."""
        with self._lock:
            if self._mailboxes.pop(email.lower(), None) is None:
                raise NoSuchMailbox(email)

    def _folder(self, mailbox: str, folder: str) -> _Folder:
        box = self._mailboxes.get(mailbox.lower())
        if box is None:
            raise NoSuchMailbox(mailbox)
        return box.folders[folder]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ---- reading

    def contacts(self, mailbox: str) -> tuple[ContactRecord, ...]:
        with self._lock:
            return tuple(e.record for e in self._folder(mailbox, "contacts").items.values()
                         if isinstance(e.record, ContactRecord))

    def meetings(self, mailbox: str) -> tuple[MeetingRecord, ...]:
        with self._lock:
            return tuple(e.record for e in self._folder(mailbox, "calendar").items.values()
                         if isinstance(e.record, MeetingRecord))

    def item(self, mailbox: str, item_id: str) -> ContactRecord | MeetingRecord:
        with self._lock:
            for folder in FOLDERS:
                entry = self._folder(mailbox, folder).items.get(item_id)
                if entry is not None:
                    return entry.record
        raise NoSuchItem(item_id)

    def calendar_item(self, mailbox: str, item_id: str) -> MeetingRecord | OccurrenceView:
        """A master/single by its id, or an occurrence by its occurrence id."""
        occ = parse_occurrence_item_id(item_id)
        if occ is None:
            record = self.item(mailbox, item_id)
            if not isinstance(record, MeetingRecord):
                raise NoSuchItem(item_id)
            return record
        master_id, original_utc = occ
        master = self.item(mailbox, master_id)
        if not isinstance(master, MeetingRecord):
            raise NoSuchItem(item_id)
        found = series_occurrence(master, original_utc)
        if found is None:
            raise NoSuchItem(item_id)
        return found

    def calendar_view(self, mailbox: str, start: datetime, end: datetime) -> list[OccurrenceView]:
        out: list[OccurrenceView] = []
        for meeting in self.meetings(mailbox):
            out.extend(expand(meeting, start, end))
        out.sort(key=lambda o: (o.start, o.item_id))
        return out

    def changes_since(self, mailbox: str, folder: str, seq: int, max_changes: int) -> ChangePage:
        with self._lock:
            fold = self._folder(mailbox, folder)
            pending: list[tuple[int, Change]] = []
            for item_id, entry in fold.items.items():
                if entry.changed_seq > seq:
                    kind: Literal["create", "update"] = "create" if entry.created_seq > seq else "update"
                    pending.append((entry.changed_seq, Change(kind, item_id, entry.record)))
            for item_id, (created, deleted) in fold.tombstones.items():
                if deleted > seq and created <= seq:
                    pending.append((deleted, Change("delete", item_id, None)))
            pending.sort(key=lambda p: p[0])
            page = pending[:max(1, max_changes)]
            includes_last = len(page) == len(pending)
            new_seq = self._seq if includes_last else page[-1][0]
            return ChangePage(tuple(c for _, c in page), max(new_seq, seq), includes_last)

    # ---- mutations

    def _put(self, mailbox: str, folder: str, record: ContactRecord | MeetingRecord) -> None:
        fold = self._folder(mailbox, folder)
        seq = self._next_seq()
        old = fold.items.get(record.item_id)
        record = replace(record, change_key=make_change_key(seq))
        if old is None:
            fold.tombstones.pop(record.item_id, None)
            fold.items[record.item_id] = _Entry(record, seq, seq)
        else:
            old.record, old.changed_seq = record, seq

    def _remove(self, mailbox: str, folder: str, item_id: str) -> None:
        fold = self._folder(mailbox, folder)
        entry = fold.items.pop(item_id, None)
        if entry is None:
            raise NoSuchItem(item_id)
        fold.tombstones[item_id] = (entry.created_seq, self._next_seq())

    def add_contact(self, mailbox: str, contact: ContactRecord) -> ContactRecord:
        """Adds (item_id "" = generate one); returns the stored record with its change key."""
        with self._lock:
            if not contact.item_id:
                new_id = make_item_id(mailbox.lower(), "contact", str(self._seq + 1))
                contact = replace(contact, item_id=new_id)
            self._put(mailbox, "contacts", contact)
            stored: ContactRecord = self._get(mailbox, "contacts", contact.item_id, ContactRecord)
            return stored

    def update_contact(self, mailbox: str, item_id: str, **changes: Any) -> ContactRecord:
        with self._lock:
            current = self._get(mailbox, "contacts", item_id, ContactRecord)
            if "phones" in changes:
                changes["phones"] = tuple(p if isinstance(p, Phone) else Phone(*p) for p in changes["phones"])
            if "emails" in changes:
                changes["emails"] = tuple(changes["emails"])
            self._put(mailbox, "contacts", replace(current, **changes))
            stored: ContactRecord = self._get(mailbox, "contacts", item_id, ContactRecord)
            return stored

    def delete_contact(self, mailbox: str, item_id: str) -> None:
        with self._lock:
            self._remove(mailbox, "contacts", item_id)

    def _get(self, mailbox: str, folder: str, item_id: str, kind: type[Any]) -> Any:
        entry = self._folder(mailbox, folder).items.get(item_id)
        if entry is None or not isinstance(entry.record, kind):
            raise NoSuchItem(item_id)
        return entry.record

    def copies(self, uid: str) -> list[tuple[str, MeetingRecord]]:
        """Every (mailbox, meeting) holding a copy of the meeting with `uid`."""
        with self._lock:
            found = []
            for box_name, box in self._mailboxes.items():
                for entry in box.folders["calendar"].items.values():
                    if isinstance(entry.record, MeetingRecord) and entry.record.uid == uid:
                        found.append((box_name, entry.record))
            return found

    def add_meeting(self, meeting: MeetingRecord,
                    mailboxes: Iterable[str] | None = None) -> list[MeetingRecord]:
        """Places a copy in each mailbox (default: organizer's and every attendee's that is a user)."""
        with self._lock:
            targets = list(mailboxes) if mailboxes is not None else self._meeting_mailboxes(meeting)
            stored = []
            for box in targets:
                copy = replace(meeting, item_id=meeting.item_id if len(targets) == 1 and meeting.item_id
                               else make_item_id(box.lower(), "meeting", meeting.uid, str(self._seq + 1)))
                self._put(box, "calendar", copy)
                stored.append(self._get(box, "calendar", copy.item_id, MeetingRecord))
            return stored

    def _meeting_mailboxes(self, meeting: MeetingRecord) -> list[str]:
        boxes = []
        for address in [meeting.organizer_email, *(a.email for a in meeting.attendees)]:
            key = address.lower()
            if key in self._mailboxes and key not in boxes:
                boxes.append(key)
        return boxes

    def update_meeting(self, uid: str, mailboxes: Iterable[str] | None = None, **changes: Any) -> None:
        """Replace fields on every copy (or those in `mailboxes`) of the meeting with `uid`."""
        with self._lock:
            wanted = {m.lower() for m in mailboxes} if mailboxes is not None else None
            hits = [(b, m) for b, m in self.copies(uid) if wanted is None or b in wanted]
            if not hits:
                raise NoSuchItem(uid)
            for box, meeting in hits:
                self._put(box, "calendar", replace(meeting, **changes))

    def move_meeting(self, uid: str, start: datetime, end: datetime) -> None:
        self.update_meeting(uid, start=start, end=end)

    def cancel_meeting(self, uid: str) -> None:
        """The organizer cancels: the organizer's copy is deleted (an ItemId-only delete in its folder
        sync), attendee copies get IsCancelled and a "Canceled: " subject, as Exchange does."""
        with self._lock:
            hits = self.copies(uid)
            if not hits:
                raise NoSuchItem(uid)
            for box, meeting in hits:
                if box == meeting.organizer_email.lower():
                    self._remove(box, "calendar", meeting.item_id)
                else:
                    self._put(box, "calendar", replace(meeting, is_cancelled=True,
                                                       subject="Canceled: " + meeting.subject))

    def delete_meeting(self, mailbox: str, item_id: str) -> None:
        with self._lock:
            self._remove(mailbox, "calendar", item_id)

    def _change_occurrence(self, uid: str, original_start: datetime, exc: OccurrenceException) -> None:
        with self._lock:
            hits = self.copies(uid)
            if not hits:
                raise NoSuchItem(uid)
            for box, meeting in hits:
                original = original_start.astimezone(meeting.tz)
                kept = tuple(e for e in meeting.exceptions if e.original_start != original)
                self._put(box, "calendar", replace(
                    meeting, exceptions=(*kept, replace(exc, original_start=original))))

    def move_occurrence(self, uid: str, original_start: datetime, start: datetime, end: datetime) -> None:
        moved = OccurrenceException(original_start, start=start, end=end)
        self._change_occurrence(uid, original_start, moved)

    def cancel_occurrence(self, uid: str, original_start: datetime) -> None:
        self._change_occurrence(uid, original_start, OccurrenceException(original_start, cancelled=True))

    # ---- faults

    def inject_fault(self, fault: Fault, operation: str | None = None, mailbox: str | None = None,
                     times: int = 1) -> None:
        """The next `times` matching requests fail with `fault` (times < 0: until clear_faults())."""
        with self._lock:
            self._faults.append(_FaultRule(fault, operation, mailbox.lower() if mailbox else None, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, operation: str, mailbox: str | None) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.operation not in (None, operation):
                    continue
                if rule.mailbox is not None and rule.mailbox != (mailbox or "").lower():
                    continue
                if rule.remaining > 0:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._faults.remove(rule)
                return rule.fault
            return None


def _constant_time_equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# ---------------------------------------------------------------- data-file loader


class _Loader:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.problems: list[str] = []

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    def text(self, obj: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = obj.get(key, default)
        if value is None:
            self.problem(f"{path}.{key}", "required")
            return ""
        if not isinstance(value, str):
            self.problem(f"{path}.{key}", f"expected a string, got {type(value).__name__}")
            return ""
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        value = obj.get(key, False)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", "expected true or false")
            return False
        return value

    def table(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, "expected an object")
            return {}
        return value

    def array(self, obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            self.problem(f"{path}.{key}", "expected a list")
            return []
        return value

    def known(self, obj: Mapping[str, Any], keys: set[str], path: str) -> None:
        for extra in sorted(set(obj) - keys):
            self.problem(f"{path}.{extra}", "unknown key")

    def load(self, data: object, source: str) -> Organisation:
        root = self.table(data, "$")
        self.known(root, {"domain", "organisation", "users", "mailboxes", "meetings", "comment"}, "$")
        domain = self.text(root, "domain", "$", "example.com")
        org_name = self.text(root, "organisation", "$", "Example")
        users: list[User] = []
        for i, raw in enumerate(self.array(root, "users", "$")):
            path = f"$.users[{i}]"
            u = self.table(raw, path)
            self.known(u, {"email", "name", "password", "legacy_dn", "can_impersonate"}, path)
            email = self.text(u, "email", path).lower()
            if email and "@" not in email:
                self.problem(f"{path}.email", f"{email!r} is not an e-mail address")
            if any(x.email == email for x in users):
                self.problem(f"{path}.email", f"{email} is listed twice")
            local = email.split("@")[0]
            users.append(User(
                email=email, name=self.text(u, "name", path, local), password=self.text(u, "password", path),
                legacy_dn=self.text(u, "legacy_dn", path,
                                    f"/o={org_name}/ou=Exchange/cn=Recipients/cn={local}"),
                can_impersonate=self.boolean(u, "can_impersonate", path)))
        org = Organisation(users, domain=domain)
        mailboxes = self.table(root.get("mailboxes", {}), "$.mailboxes")
        for box_name, raw_box in mailboxes.items():
            path = f"$.mailboxes[{box_name!r}]"
            box = self.table(raw_box, path)
            self.known(box, {"contacts", "meetings"}, path)
            if not org.has_mailbox(box_name):
                self.problem(path, "no user with this e-mail address")
                continue
            for j, raw in enumerate(self.array(box, "contacts", path)):
                contact = self.contact(raw, f"{path}.contacts[{j}]", box_name, j)
                if contact is not None:
                    org.add_contact(box_name, contact)
            for j, raw in enumerate(self.array(box, "meetings", path)):
                meeting = self.meeting(raw, f"{path}.meetings[{j}]", box_name, j)
                if meeting is not None:
                    org.add_meeting(meeting, [box_name])
        for j, raw in enumerate(self.array(root, "meetings", "$")):
            meeting = self.meeting(raw, f"$.meetings[{j}]", "", j)
            if meeting is not None:
                if not org._meeting_mailboxes(meeting):
                    self.problem(f"$.meetings[{j}]", "neither organizer nor any attendee is a user")
                    continue
                org.add_meeting(meeting)
        if self.problems:
            raise DataFileError(self.problems, source)
        return org

    def contact(self, raw: object, path: str, box: str, index: int) -> ContactRecord | None:
        c = self.table(raw, path)
        self.known(c, {"id", "display_name", "given_name", "surname", "company", "title", "emails", "phones"},
                   path)
        given, surname = self.text(c, "given_name", path, ""), self.text(c, "surname", path, "")
        display = self.text(c, "display_name", path, f"{given} {surname}".strip())
        if not display:
            self.problem(path, "needs display_name or given_name/surname")
        emails = []
        for k, mail in enumerate(self.array(c, "emails", path)):
            if not isinstance(mail, str):
                self.problem(f"{path}.emails[{k}]", "expected a string")
            else:
                emails.append(mail)
        if len(emails) > 3:
            self.problem(f"{path}.emails", "Exchange keeps at most 3 e-mail addresses")
        phones = []
        raw_phones = c.get("phones", {})
        if not isinstance(raw_phones, dict):
            self.problem(f"{path}.phones", "expected an object {kind: number}")
            raw_phones = {}
        for kind, number in raw_phones.items():
            if kind not in PHONE_KINDS:
                self.problem(f"{path}.phones.{kind}", f"unknown kind; use one of {', '.join(PHONE_KINDS)}")
            elif not isinstance(number, str):
                self.problem(f"{path}.phones.{kind}", "expected a string")
            else:
                phones.append(Phone(kind, number))
        return ContactRecord(
            item_id=self.text(c, "id", path, "") or make_item_id(box.lower(), "contact", str(index), display),
            change_key="", display_name=display, given_name=given, surname=surname,
            company=self.text(c, "company", path, ""), title=self.text(c, "title", path, ""),
            emails=tuple(emails), phones=tuple(phones))

    def time(self, obj: Mapping[str, Any], key: str, path: str, tz: ZoneInfo) -> datetime | None:
        text = self.text(obj, key, path)
        if not text:
            return None
        try:
            return parse_time(text, tz, self.now)
        except ValueError as exc:
            self.problem(f"{path}.{key}", str(exc))
            return None

    def meeting(self, raw: object, path: str, box: str, index: int) -> MeetingRecord | None:
        m = self.table(raw, path)
        self.known(m, {"id", "uid", "subject", "location", "organizer", "attendees", "start", "end",
                       "duration_minutes", "timezone", "all_day", "cancelled", "recurrence", "exceptions",
                       "wire_timezone"}, path)
        zone_id = self.text(m, "timezone", path, "UTC")
        try:
            tz = resolve_timezone(zone_id)
        except ValueError as exc:
            self.problem(f"{path}.timezone", str(exc))
            return None
        all_day = self.boolean(m, "all_day", path)
        start = self.time(m, "start", path, tz)
        if start is None:
            return None
        if all_day:
            start = datetime.combine(start.date(), time(0), tz)
        if "end" in m:
            end = self.time(m, "end", path, tz)
            if end is None:
                return None
            if all_day:
                end = datetime.combine(end.date(), time(0), tz)
        else:
            minutes = m.get("duration_minutes", 1440 if all_day else 30)
            if not isinstance(minutes, int) or minutes <= 0:
                self.problem(f"{path}.duration_minutes", "expected a positive integer")
                return None
            end = start + timedelta(minutes=minutes)
        if end <= start:
            self.problem(f"{path}.end", "must be after start")
        organizer = self.table(m.get("organizer", {"email": box} if box else None), f"{path}.organizer")
        attendees = []
        for k, raw_att in enumerate(self.array(m, "attendees", path)):
            apath = f"{path}.attendees[{k}]"
            a = self.table(raw_att, apath)
            self.known(a, {"email", "name", "kind", "response"}, apath)
            kind = self.text(a, "kind", apath, "required")
            response = self.text(a, "response", apath, "noresponse")
            if kind not in ATTENDEE_KINDS:
                self.problem(f"{apath}.kind", f"use one of {', '.join(ATTENDEE_KINDS)}")
            if response not in RESPONSES:
                self.problem(f"{apath}.response", f"use one of {', '.join(RESPONSES)}")
            attendees.append(AttendeeRecord(self.text(a, "email", apath), self.text(a, "name", apath, ""),
                                            kind, response))
        recurrence = None
        if "recurrence" in m:
            recurrence = self.recurrence(m.get("recurrence"), f"{path}.recurrence", tz)
        exceptions = []
        for k, raw_exc in enumerate(self.array(m, "exceptions", path)):
            epath = f"{path}.exceptions[{k}]"
            e = self.table(raw_exc, epath)
            self.known(e, {"original_start", "cancelled", "start", "end", "subject", "location"}, epath)
            original = self.time(e, "original_start", epath, tz)
            if original is None:
                continue
            moved_start = self.time(e, "start", epath, tz) if "start" in e else None
            moved_end = self.time(e, "end", epath, tz) if "end" in e else None
            if moved_start and not moved_end:
                moved_end = moved_start + (end - start)
            exceptions.append(OccurrenceException(
                original, cancelled=self.boolean(e, "cancelled", epath), start=moved_start, end=moved_end,
                subject=e.get("subject") if isinstance(e.get("subject"), str) else None,
                location=e.get("location") if isinstance(e.get("location"), str) else None))
        if exceptions and recurrence is None:
            self.problem(f"{path}.exceptions", "only a recurring meeting has exceptions")
        uid = self.text(m, "uid", path, "") or ("040000008200E00074C5B7101A82E008" +
                                                 hashlib.sha256(f"{path}".encode()).hexdigest()[:32].upper())
        meeting = MeetingRecord(
            item_id=self.text(m, "id", path, "") or make_item_id(box.lower(), "meeting", uid, str(index)),
            change_key="", uid=uid, subject=self.text(m, "subject", path, ""), start=start, end=end,
            timezone_id=zone_id, location=self.text(m, "location", path, ""),
            organizer_email=self.text(organizer, "email", f"{path}.organizer").lower(),
            organizer_name=self.text(organizer, "name", f"{path}.organizer", ""),
            attendees=tuple(attendees), is_all_day=all_day, is_cancelled=self.boolean(m, "cancelled", path),
            recurrence=recurrence, exceptions=tuple(exceptions),
            wire_timezone_id=self.text(m, "wire_timezone", path, ""))
        if recurrence is not None:
            for k, change in enumerate(exceptions):
                if change.cancelled:
                    continue
                if series_occurrence(meeting, change.original_start.astimezone(UTC)) is None:
                    self.problem(f"{path}.exceptions[{k}].original_start", "not an occurrence of the series")
        return meeting

    def recurrence(self, raw: object, path: str, tz: ZoneInfo) -> Recurrence | None:
        r = self.table(raw, path)
        self.known(r, {"pattern", "interval", "count", "until", "days"}, path)
        pattern = r.get("pattern")
        if pattern not in ("daily", "weekly"):
            self.problem(f"{path}.pattern", "use daily or weekly")
            return None
        interval = r.get("interval", 1)
        if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 999:
            self.problem(f"{path}.interval", "expected an integer 1..999")
            interval = 1
        count = r.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            self.problem(f"{path}.count", "expected a positive integer")
            count = None
        until = None
        if "until" in r:
            until_time = self.time(r, "until", path, tz)
            until = until_time.date() if until_time else None
        days: list[int] = []
        for k, day in enumerate(self.array(r, "days", path)):
            if not isinstance(day, str) or day.lower() not in WEEKDAYS:
                self.problem(f"{path}.days[{k}]", f"use one of {', '.join(WEEKDAYS)}")
            else:
                days.append(WEEKDAYS.index(day.lower()))
        if days and pattern != "weekly":
            self.problem(f"{path}.days", "only for pattern weekly")
        return Recurrence(pattern, interval, count, until, tuple(sorted(set(days))))
