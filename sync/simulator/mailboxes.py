"""The simulated Exchange organisation: users, their mailboxes, and a change log — protocol-neutral.

Every simulated server (EWS SOAP in `ews_server`, Graph REST in `graph_server`) serves views of ONE
`Organisation`. Nothing here knows XML or JSON on the wire. This module is the one import for callers;
the parts live in modules with one job each:

- `records`: the frozen records and the item kinds (`Item`, `FOLDER_OF`): where a new kind of item starts.
- `datafile`: the JSON data file read and checked (`DataFileError` lists every problem with its JSON path).
- `zones`: IANA/Windows time zone ids and relative times ("now+20s", "today+1d 09:00").
- `recurrence`: series expanded into occurrences, in the meeting's own zone.
- `ids`: item ids, change keys and sync-state tokens.
- `changelog`: one folder's items and its change log (incremental sync).
- `faults`: injected faults and request counters.
- `organisation`: `Organisation`, which holds it all and changes it at runtime.

How to build another protocol view on it:

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
  `remove_mailbox`; `update_item_if(mailbox, item_id, change_key, **changes)` changes one meeting only if
  its change key is still that one (the writes of EWS UpdateItem and Graph PATCH; `writes`: who may write,
  what was written). Meetings given at top level of the data file (or added with `mailboxes=None`) are
  placed, as Outlook does, in the organizer's mailbox and in every attendee's mailbox that belongs to a
  user, each copy with its own item id and the same UID.
- Contacts as real mailboxes hold them: sub-folders of Contacts (`add_contact_folder`,
  `update_contact_folder` to rename or move, `delete_contact_folder`; hidden ones have a FolderClass
  other than IPF.Contact), each with its own change log ("contacts:<folder id>"); a contact's `folder` says
  where it is. `add_item(mailbox, OddItemRecord(...))` files a contact group, a message, a document, a
  contact the Exchange library cannot parse or one without an id; EWS and Graph show each as their
  servers would (Graph's contacts endpoints return contacts only).
- Faults: `org.inject_fault(Fault(...), operation=None, mailbox=None, times=1)`; a server calls
  `org.take_fault(operation, mailbox)` at the start of each request and renders the fault its own way.
  Operation names are the server's own ("SyncFolderItems", "GetItem", "delta" ...); None matches all.
- Counters: `org.counters.count(operation, mailbox)`, `org.counters.by_operation()`,
  `org.counters.by_mailbox()`, `org.counters.reset()`.
"""

from __future__ import annotations

from pbxsync.sync.simulator.changelog import Change, ChangePage
from pbxsync.sync.simulator.datafile import DataFileError
from pbxsync.sync.simulator.faults import Fault, RequestCounters
from pbxsync.sync.simulator.ids import (
    decode_sync_state,
    encode_sync_state,
    make_item_id,
    occurrence_item_id,
    parse_occurrence_item_id,
)
from pbxsync.sync.simulator.organisation import NoSuchFolder, NoSuchItem, NoSuchMailbox, Organisation
from pbxsync.sync.simulator.records import (
    ATTENDEE_KINDS,
    FOLDERS,
    ODD_ITEM_KINDS,
    PHONE_KINDS,
    RESPONSES,
    AttendeeRecord,
    ContactFolderRecord,
    ContactRecord,
    FolderName,
    Item,
    MeetingRecord,
    OccurrenceException,
    OccurrenceView,
    OddItemRecord,
    Phone,
    Recurrence,
    User,
)
from pbxsync.sync.simulator.recurrence import MAX_EXPANDED_OCCURRENCES, expand, series_occurrence
from pbxsync.sync.simulator.zones import parse_time, resolve_timezone, windows_timezone_id

__all__ = [
    "ATTENDEE_KINDS", "FOLDERS", "MAX_EXPANDED_OCCURRENCES", "ODD_ITEM_KINDS", "PHONE_KINDS", "RESPONSES",
    "AttendeeRecord", "Change", "ChangePage", "ContactFolderRecord", "ContactRecord", "DataFileError", "Fault",
    "FolderName", "Item", "MeetingRecord", "NoSuchFolder", "NoSuchItem", "NoSuchMailbox", "OccurrenceException",
    "OccurrenceView", "OddItemRecord", "Organisation", "Phone",
    "Recurrence", "RequestCounters", "User", "decode_sync_state", "encode_sync_state", "expand",
    "make_item_id", "occurrence_item_id", "parse_occurrence_item_id", "parse_time", "resolve_timezone",
    "series_occurrence", "windows_timezone_id",
]
