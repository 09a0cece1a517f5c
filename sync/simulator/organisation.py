"""The simulated Exchange organisation: users, their mailboxes, runtime changes, faults and counters.

Every read is a snapshot of frozen records; every change bumps the item's change key and appends to its
folder's change log (`changelog`). Thread-safe: the HTTP simulators serve from request threads while a
test changes the data. Listeners (`add_listener`) hear a `ChangeNotice` for every stored change (and every
change of a sub-folder of Contacts), so a server can push notifications (Graph webhooks, EWS streaming).

Over 400 lines on purpose: the organisation is the one mutable world both simulators serve (mailboxes,
folders, change logs, listeners); its records, data file, recurrence and zones already live apart.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pbxsync.sync.simulator.changelog import ChangePage, Folder
from pbxsync.sync.simulator.datafile import DataFile, parse_data, read_json
from pbxsync.sync.simulator.faults import Fault, FaultPlan, RequestCounters
from pbxsync.sync.simulator.groups import GroupDirectory, GroupRecord
from pbxsync.sync.simulator.ids import make_item_id, parse_occurrence_item_id
from pbxsync.sync.simulator.records import (
    CONTACT_FOLDER_CLASS,
    FOLDER_OF,
    FOLDERS,
    ContactFolderRecord,
    ContactRecord,
    FolderName,
    Item,
    MeetingRecord,
    OccurrenceException,
    OccurrenceView,
    OddItemRecord,
    Phone,
    User,
    contact_folder_key,
    copy_holders,
    folder_key,
)
from pbxsync.sync.simulator.recurrence import expand, series_occurrence
from pbxsync.sync.simulator.writes import CalendarWrites

_Kind = TypeVar("_Kind", ContactRecord, OddItemRecord, MeetingRecord)


class NoSuchMailbox(LookupError):
    """The mailbox does not exist (never did, or was removed while running)."""


class NoSuchItem(LookupError):
    """No item with that id in that mailbox."""


class StaleChangeKey(Exception):
    """A write named a change key the item no longer has (someone changed it since it was read)."""


class NoSuchFolder(LookupError):
    """No folder with that id in that mailbox (never was, or deleted)."""


@dataclass(frozen=True)
class ChangeNotice:
    """One stored change as a listener hears it (a server turns these into push notifications)."""

    mailbox: str
    folder: FolderName
    kind: Literal["create", "update", "delete"]
    item_id: str
    folder_key: str = ""  # the folder it happened in when not `folder` itself: "contacts:<id>" (a sub-folder)
    # "folder": a sub-folder of Contacts was created, changed (renamed, moved) or deleted; `item_id` is its
    # key ("contacts:<id>") and `folder_key` its parent's ("" = Contacts). Item listeners skip these.
    what: Literal["item", "folder"] = "item"


ChangeListener = Callable[[ChangeNotice], None]


@dataclass
class _Mailbox:
    # "contacts", "calendar", and "contacts:<id>" per sub-folder of Contacts (records.contact_folder_key)
    folders: dict[str, Folder] = field(default_factory=lambda: {f: Folder() for f in FOLDERS})
    contact_folders: dict[str, ContactFolderRecord] = field(default_factory=dict)


class Organisation:
    """Users, mailboxes, faults and counters. Every public method is thread-safe."""

    def __init__(self, users: Iterable[User] = (), domain: str = "example.com") -> None:
        self._lock = threading.RLock()
        self._seq = 0
        self._users: dict[str, User] = {}
        self._mailboxes: dict[str, _Mailbox] = {}
        self.faults = FaultPlan()
        self._listeners: list[ChangeListener] = []
        self.counters = RequestCounters()
        self.groups = GroupDirectory()
        self.writes = CalendarWrites()  # writes into calendars (write permission, what was asked)
        self.domain = domain
        for user in users:
            self.add_user(user)

    # ---- loading

    @classmethod
    def load_file(cls, path: str | Path, now: datetime | None = None) -> Organisation:
        return cls.from_dict(read_json(path), now=now, source=str(path))

    @classmethod
    def from_dict(cls, data: object, now: datetime | None = None, source: str = "") -> Organisation:
        return cls.from_data(parse_data(data, now or datetime.now(UTC), source))

    @classmethod
    def from_data(cls, data: DataFile) -> Organisation:
        org = cls(data.users, domain=data.domain)
        for group in data.groups:
            org.add_group(group)
        for placement in data.placements:
            record, box = placement.record, placement.mailbox
            if isinstance(record, MeetingRecord):
                org.add_meeting(record, None if box is None else [box])
            elif box is None:
                continue
            elif isinstance(record, ContactFolderRecord):
                org.add_contact_folder(box, record.name, record.parent_id, record.folder_class, record.folder_id)
            elif isinstance(record, OddItemRecord):
                org.add_item(box, record)
            else:
                org.add_contact(box, record)
        return org

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
        if user is None or not hmac.compare_digest(user.password.encode("utf-8"), password.encode("utf-8")):
            return None
        return user

    def add_group(self, group: GroupRecord) -> None:
        self.groups.add(group)

    def mailbox_type(self, address: str) -> str:
        """How EWS types an address (MailboxType): a user's or a room's mailbox, a group, or a one-off
        outside address."""
        group = self.groups.get(address)
        if group is not None:
            return group.mailbox_type
        return "Mailbox" if self.user(address) is not None else "OneOff"

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

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """`listener` hears every change from now on; it runs under the organisation's lock, so it must
        only hand the notice on (e.g. to a queue). Returns the function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _announce(self, mailbox: str, folder: FolderName, kind: Literal["create", "update", "delete"],
                  item_id: str, key: str = "", what: Literal["item", "folder"] = "item") -> None:
        if self._listeners:
            notice = ChangeNotice(mailbox.lower(), folder, kind, item_id, "" if key == folder else key, what)
            for listener in list(self._listeners):
                listener(notice)

    def _box(self, mailbox: str) -> _Mailbox:
        box = self._mailboxes.get(mailbox.lower())
        if box is None:
            raise NoSuchMailbox(mailbox)
        return box

    def _folder(self, mailbox: str, folder: str) -> Folder:
        found = self._box(mailbox).folders.get(folder)
        if found is None:
            raise NoSuchFolder(folder)
        return found

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ---- reading

    def contacts(self, mailbox: str, folder: str | None = "") -> tuple[ContactRecord, ...]:
        """The contacts of the default Contacts folder (""), of one sub-folder (its id), or of every
        contacts folder (None)."""
        with self._lock:
            keys = ([k for k in self._box(mailbox).folders if k.split(":")[0] == "contacts"] if folder is None
                    else [contact_folder_key(folder)])
            return tuple(r for k in keys for r in self._folder(mailbox, k).records() if isinstance(r, ContactRecord))

    def contact_folders(self, mailbox: str) -> tuple[ContactFolderRecord, ...]:
        """Every folder below Contacts (hidden ones too), parents before children."""
        with self._lock:
            return tuple(self._box(mailbox).contact_folders.values())

    def meetings(self, mailbox: str) -> tuple[MeetingRecord, ...]:
        with self._lock:
            return tuple(r for r in self._folder(mailbox, "calendar").records() if isinstance(r, MeetingRecord))

    def folder_items(self, mailbox: str, folder: str) -> tuple[Item, ...]:
        """Every item in the folder, whatever its kind."""
        with self._lock:
            return tuple(self._folder(mailbox, folder).records())

    def item(self, mailbox: str, item_id: str) -> Item:
        with self._lock:
            for folder in self._box(mailbox).folders.values():
                record = folder.get(item_id)
                if record is not None:
                    return record
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
            return self._folder(mailbox, folder).changes_since(seq, max_changes, self._seq)

    def copies(self, uid: str) -> list[tuple[str, MeetingRecord]]:
        """Every (mailbox, meeting) holding a copy of the meeting with `uid`."""
        with self._lock:
            found = []
            for box_name, box in self._mailboxes.items():
                for record in box.folders["calendar"].records():
                    if isinstance(record, MeetingRecord) and record.uid == uid:
                        found.append((box_name, record))
            return found

    # ---- mutations

    def _put(self, mailbox: str, record: _Kind) -> _Kind:
        folder_name = FOLDER_OF[type(record)]  # a contacts sub-folder's changes are announced as "contacts"
        folder = self._folder(mailbox, folder_key(record))
        created = folder.get(record.item_id) is None
        stored = folder.put(record, self._next_seq())
        assert isinstance(stored, type(record))
        self._announce(mailbox, folder_name, "create" if created else "update", stored.item_id, folder_key(record))
        return stored

    def _remove(self, mailbox: str, folder: FolderName, item_id: str, key: str = "") -> None:
        """Deletes from `folder`, or from its change log `key` (a contacts sub-folder's)."""
        seq = self._seq + 1  # taken only if there is such an item
        if not self._folder(mailbox, key or folder).remove(item_id, seq):
            raise NoSuchItem(item_id)
        self._seq = seq
        self._announce(mailbox, folder, "delete", item_id, key)

    def _get(self, mailbox: str, item_id: str, kind: type[_Kind]) -> _Kind:
        """The item, from whichever of the mailbox's folders for its kind holds it (Contacts has sub-folders)."""
        for key, folder in self._box(mailbox).folders.items():
            record = folder.get(item_id) if key.split(":")[0] == FOLDER_OF[kind] else None
            if isinstance(record, kind):
                return record
        raise NoSuchItem(item_id)

    def add_contact(self, mailbox: str, contact: ContactRecord) -> ContactRecord:
        """Adds (item_id "" = generate one) to `contact.folder`; returns the stored record with its change key."""
        with self._lock:
            if not contact.item_id:
                new_id = make_item_id(mailbox.lower(), "contact", str(self._seq + 1))
                contact = replace(contact, item_id=new_id)
            return self._put(mailbox, contact)

    def add_item(self, mailbox: str, item: OddItemRecord) -> OddItemRecord:
        """Files a group, message, document or broken contact in a contacts folder (item_id "" = generate one)."""
        with self._lock:
            if not item.item_id:
                item = replace(item, item_id=make_item_id(mailbox.lower(), "item", str(self._seq + 1)))
            return self._put(mailbox, item)

    def update_contact(self, mailbox: str, item_id: str, **changes: Any) -> ContactRecord:
        with self._lock:
            current = self._get(mailbox, item_id, ContactRecord)
            if "folder" in changes:
                raise ValueError("a contact moves to another folder as a new item: delete and add it")
            if "phones" in changes:
                changes["phones"] = tuple(p if isinstance(p, Phone) else Phone(*p) for p in changes["phones"])
            if "emails" in changes:
                changes["emails"] = tuple(changes["emails"])
            return self._put(mailbox, replace(current, **changes))

    def delete_contact(self, mailbox: str, item_id: str) -> None:
        with self._lock:
            self._remove(mailbox, "contacts", item_id, folder_key(self._get(mailbox, item_id, ContactRecord)))

    def add_contact_folder(self, mailbox: str, name: str, parent_id: str = "",
                           folder_class: str = CONTACT_FOLDER_CLASS, folder_id: str = "") -> ContactFolderRecord:
        """A new folder below Contacts (or below the sub-folder `parent_id`); folder_id "" = generate one."""
        with self._lock:
            box = self._box(mailbox)
            if parent_id and parent_id not in box.contact_folders:
                raise NoSuchFolder(parent_id)
            record = ContactFolderRecord(folder_id or make_item_id(mailbox.lower(), "folder", str(self._next_seq())),
                                         name, parent_id, folder_class)
            box.contact_folders[record.folder_id] = record
            box.folders.setdefault(contact_folder_key(record.folder_id), Folder())
            self._announce(mailbox, "contacts", "create", contact_folder_key(record.folder_id),
                           contact_folder_key(parent_id), "folder")
            return record

    def update_contact_folder(self, mailbox: str, folder_id: str, **changes: Any) -> ContactFolderRecord:
        """Rename (`name=`) or move (`parent_id=`) a folder below Contacts; its items keep their ids."""
        with self._lock:
            box = self._box(mailbox)
            if folder_id not in box.contact_folders:
                raise NoSuchFolder(folder_id)
            box.contact_folders[folder_id] = replace(box.contact_folders[folder_id], **changes)
            self._announce(mailbox, "contacts", "update", contact_folder_key(folder_id),
                           contact_folder_key(box.contact_folders[folder_id].parent_id), "folder")
            return box.contact_folders[folder_id]

    def delete_contact_folder(self, mailbox: str, folder_id: str) -> None:
        """The folder goes, with every folder below it and every item in them."""
        with self._lock:
            box = self._box(mailbox)
            doomed = {folder_id}
            while True:
                below = {f.folder_id for f in box.contact_folders.values() if f.parent_id in doomed} - doomed
                if not below:
                    break
                doomed |= below
            if folder_id not in box.contact_folders:
                raise NoSuchFolder(folder_id)
            parent = box.contact_folders[folder_id].parent_id
            for gone in doomed:
                del box.contact_folders[gone]
                del box.folders[contact_folder_key(gone)]
            self._announce(mailbox, "contacts", "delete", contact_folder_key(folder_id), contact_folder_key(parent),
                           "folder")

    def add_meeting(self, meeting: MeetingRecord,
                    mailboxes: Iterable[str] | None = None) -> list[MeetingRecord]:
        """Places a copy in each mailbox (default: organizer's and every attendee's that is a user)."""
        with self._lock:
            if mailboxes is not None:
                targets = list(mailboxes)
            else:  # as Exchange delivers: to the organizer, the attendees and the invited groups' members
                targets = copy_holders(meeting, self._mailboxes)
                targets += [b for b in self.groups.delivery((a.email for a in meeting.attendees), self._mailboxes)
                            if b not in targets]
            stored = []
            for box in targets:
                copy = replace(meeting, item_id=meeting.item_id if len(targets) == 1 and meeting.item_id
                               else make_item_id(box.lower(), "meeting", meeting.uid, str(self._seq + 1)))
                stored.append(self._put(box, copy))
            return stored

    def update_meeting(self, uid: str, mailboxes: Iterable[str] | None = None, **changes: Any) -> None:
        """Replace fields on every copy (or those in `mailboxes`) of the meeting with `uid`."""
        with self._lock:
            wanted = {m.lower() for m in mailboxes} if mailboxes is not None else None
            hits = [(b, m) for b, m in self.copies(uid) if wanted is None or b in wanted]
            if not hits:
                raise NoSuchItem(uid)
            for box, meeting in hits:
                self._put(box, replace(meeting, **changes))

    def update_item_if(self, mailbox: str, item_id: str, change_key: str | None, **changes: Any) -> MeetingRecord:
        """Replace fields of one meeting only if its change key is still `change_key` (None: any), as one
        step: the compare-and-set behind EWS UpdateItem's ChangeKey and Graph's If-Match."""
        with self._lock:
            current = self._get(mailbox, item_id, MeetingRecord)
            if change_key is not None and change_key != current.change_key:
                raise StaleChangeKey(item_id)
            return self._put(mailbox, replace(current, **changes))

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
                    self._put(box, replace(meeting, is_cancelled=True, subject="Canceled: " + meeting.subject))

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
                self._put(box, replace(meeting, exceptions=(*kept, replace(exc, original_start=original))))

    def move_occurrence(self, uid: str, original_start: datetime, start: datetime, end: datetime) -> None:
        moved = OccurrenceException(original_start, start=start, end=end)
        self._change_occurrence(uid, original_start, moved)

    def cancel_occurrence(self, uid: str, original_start: datetime) -> None:
        self._change_occurrence(uid, original_start, OccurrenceException(original_start, cancelled=True))

    # ---- faults (see `faults.FaultPlan`; kept here so tests reach everything through `org`)

    def inject_fault(self, fault: Fault, operation: str | None = None, mailbox: str | None = None,
                     times: int = 1) -> None:
        """The next `times` matching requests fail with `fault` (times < 0: until clear_faults())."""
        self.faults.inject(fault, operation, mailbox, times)

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, operation: str, mailbox: str | None) -> Fault | None:
        return self.faults.take(operation, mailbox)
