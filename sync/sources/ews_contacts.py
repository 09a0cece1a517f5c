"""EWS contacts: the Contacts folder and every phonebook folder below it, one SyncFolderItems round each.

Which folders. FindFolder (deep traversal) under the Contacts folder lists the tree. A folder is the
user's phonebook when its FolderClass is exactly `IPF.Contact` and its name is not one of Exchange's own
(Recipient Cache, GAL Contacts, Organizational Contacts, ...: IPF.Contact.* classes, or IPF.Contact for
ExternalContacts); below a folder that is not, nothing is. At most MAX_CONTACT_FOLDERS folders.

State. One JSON sync state holds, per folder id, the folder's own SyncState, its path ("Suppliers/Berlin")
and, for sub-folders, the ids of the items seen in it. A folder that is gone (deleted, moved out of the
tree, hidden) reports its items deleted; a folder whose path changed (renamed, moved inside the tree) is
synced again from the start, so its contacts carry the new path. A plain, non-JSON state is what earlier
versions stored: the Contacts folder's own SyncState. A JSON state of another kind (a Graph state after
a backend switch) starts over.

Items. A Contact becomes a `Contact`; a DistributionList (an Outlook contact group) is not a contact and
is left out without a report; anything else (a message or document filed among the contacts, an item
exchangelib could not read, a contact without id or whose fields cannot be mapped) is a `SkippedItem`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from exchangelib import Account
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder, FolderCollection
from exchangelib.items import Contact as EwsContact
from exchangelib.items import DistributionList

from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.model import Contact, ContactChanges, PhoneKind, PhoneNumber, SkippedItem
from pbxsync.sync.phones import normalise_phone
from pbxsync.sync.sources.contact_fields import (
    EWS_PHONE_KINDS,
    MAX_CONTACT_FOLDERS,
    contact_email,
    contact_text,
    display_name,
    folder_path,
    is_system_folder,
)
from pbxsync.sync.sources.ews_sync import sync_folder_items

CONTACT_FIELDS = ("display_name", "file_as", "given_name", "surname", "company_name", "job_title",
                  "email_addresses", "phone_numbers", "item_class")
PHONEBOOK_CLASS = "ipf.contact"
STATE_KIND = "ews-contacts"
DEFAULT = ""  # the Contacts folder's key in the state
_ITEM_CLASS = re.compile(r"[^\w.\-]")


@dataclass
class FolderState:
    sync_state: str = ""
    path: str = ""
    item_ids: set[str] = field(default_factory=set)  # sub-folders only: what to delete if the folder goes


def load_state(text: str) -> dict[str, FolderState]:
    if not text:
        return {}
    if not text.lstrip().startswith("{"):
        return {DEFAULT: FolderState(text)}  # a SyncState as earlier versions stored it
    try:
        data = json.loads(text)
        if data.get("kind") != STATE_KIND or data.get("v") != 1:
            return {}
        return {str(fid): FolderState(str(f["state"]), str(f.get("path", "")), {str(i) for i in f.get("ids", ())})
                for fid, f in data["folders"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def dump_state(folders: dict[str, FolderState]) -> str:
    return json.dumps({"v": 1, "kind": STATE_KIND, "folders": {
        fid: {"state": f.sync_state, "path": f.path, **({"ids": sorted(f.item_ids)} if fid != DEFAULT else {})}
        for fid, f in folders.items()}}, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class FoundFolder:
    folder_id: str
    parent_id: str
    name: str
    folder_class: str


def phonebook_folders(root_id: str, found: Iterable[FoundFolder]) -> list[tuple[str, str]]:
    """(folder id, path) of every phonebook folder below `root_id`, parents before children."""
    children: dict[str, list[FoundFolder]] = {}
    for f in found:
        children.setdefault(f.parent_id, []).append(f)
    out: list[tuple[str, str]] = []
    pending = [(root_id, "")]
    seen = {root_id}
    while pending:
        parent, parent_path = pending.pop(0)
        for child in sorted(children.get(parent, ()), key=lambda f: (" ".join(f.name.split()).casefold(), f.folder_id)):
            if (child.folder_id in seen or child.folder_class.lower() != PHONEBOOK_CLASS
                    or is_system_folder(child.name)):
                continue
            seen.add(child.folder_id)
            path = folder_path(parent_path, child.name)
            out.append((child.folder_id, path))
            pending.append((child.folder_id, path))
    return out


def _found(account: Account) -> dict[FoundFolder, Any]:
    """Every folder below Contacts, with the exchangelib folder object to sync it."""
    wanted = {FieldPath(field=Folder.get_field_by_fieldname(n)) for n in ("name", "folder_class", "parent_folder_id")}
    out: dict[FoundFolder, Any] = {}
    for f in FolderCollection(account=account, folders=[account.contacts]).find_folders(
            depth="Deep", additional_fields=wanted):
        if isinstance(f, Exception):
            raise f
        parent = getattr(f, "parent_folder_id", None)
        if not f.id or parent is None or not parent.id:
            continue
        out[FoundFolder(str(f.id), str(parent.id), f.name if isinstance(f.name, str) else "",
                        f.folder_class if isinstance(f.folder_class, str) else "")] = f
        if len(out) > 10 * MAX_CONTACT_FOLDERS:
            raise SourceDataError(f"EWS {account.primary_smtp_address}: too many folders below Contacts")
    return out


def _item_id(item: Any) -> str:
    value = getattr(item, "id", None)
    return str(value)[:512] if isinstance(value, str) and value else ""


def contact_folders(account: Account) -> list[tuple[str, str, Any]]:
    """(state key, path, exchangelib folder) of every folder a contacts pass reads: the Contacts folder
    (key DEFAULT, path ""), then its phonebook folders. The streaming feed subscribes to the same ones."""
    contacts_folder = account.contacts
    found = _found(account)
    by_id = {f.folder_id: obj for f, obj in found.items()}
    chosen = phonebook_folders(str(contacts_folder.id), found)
    if len(chosen) > MAX_CONTACT_FOLDERS:
        raise SourceDataError(f"EWS {account.primary_smtp_address}: more than {MAX_CONTACT_FOLDERS} contact folders")
    return [(DEFAULT, "", contacts_folder), *((folder_id, path, by_id[folder_id]) for folder_id, path in chosen)]


class ContactsReader:
    """One mailbox's contacts pass, synchronous (run in a worker thread)."""

    def __init__(self, account: Account, region: str, page_size: int, max_pages: int) -> None:
        self.account = account
        self.region = region
        self.page_size = page_size
        self.max_pages = max_pages

    def read(self, sync_state: str) -> ContactChanges:
        previous = load_state(sync_state)
        folders = contact_folders(self.account)
        contacts_folder = folders[0][2]
        fields = {f for f in contacts_folder.normalize_fields(fields=list(CONTACT_FIELDS)) if not f.field.is_attribute}
        upserts: dict[str, Contact] = {}
        deleted: set[str] = set()
        skipped: list[SkippedItem] = []
        new_state: dict[str, FolderState] = {}
        complete = True
        for folder_id, path, folder in folders:
            before = previous.get(folder_id, FolderState(path=path))
            if before.path != path:  # renamed or moved within the tree: its contacts need the new path
                deleted.update(before.item_ids)
                before = FolderState(path=path)
            changes = sync_folder_items(self.account, folder, before.sync_state, fields, self.page_size,
                                        self.max_pages)
            complete = complete and changes.complete
            ids = set(before.item_ids)
            for gone in changes.deleted:
                ids.discard(gone)
                deleted.add(gone)
            for unreadable in changes.unreadable:
                skipped.append(SkippedItem(path, unreadable.item_id, unreadable.reason))
                ids.add(unreadable.item_id)
            for item in changes.upserts:
                mapped = self._map(item, path)
                item_id = _item_id(item)
                if item_id:
                    ids.add(item_id)
                if isinstance(mapped, Contact):
                    upserts[mapped.item_id] = mapped  # duplicates: the last one wins
                elif isinstance(mapped, SkippedItem):
                    skipped.append(mapped)
            ids.discard("")
            new_state[folder_id] = FolderState(changes.state, path, ids if folder_id != DEFAULT else set())
        for folder_id, gone_folder in previous.items():
            if folder_id not in new_state:  # deleted, moved out of the tree or hidden: so are its contacts
                deleted.update(gone_folder.item_ids)
        deleted.difference_update(upserts)  # an item deleted in one folder and created in another stays
        return ContactChanges(tuple(upserts.values()), tuple(sorted(deleted)), dump_state(new_state), complete,
                              tuple(skipped))

    def _map(self, item: Any, path: str) -> Contact | SkippedItem | None:
        """A Contact, a SkippedItem, or None for a contact group (not a contact, not an error)."""
        item_id = _item_id(item)
        if isinstance(item, DistributionList):
            return None
        if not isinstance(item, EwsContact):
            kind = _ITEM_CLASS.sub("?", str(getattr(item, "item_class", None) or type(item).__name__))[:64]
            return SkippedItem(path, item_id, f"not a contact ({kind})")
        if not item_id:
            return SkippedItem(path, "", "a contact without an item id")
        try:
            return self._contact(item, item_id, path)
        except Exception as exc:  # a field in a shape nobody expected: this item only
            return SkippedItem(path, item_id, f"cannot map its fields ({type(exc).__name__})")

    def _contact(self, item: EwsContact, item_id: str, path: str) -> Contact:
        phones: list[PhoneNumber] = []
        for entry in item.phone_numbers or ():
            number = getattr(entry, "phone_number", None)
            if isinstance(number, str):
                kind = EWS_PHONE_KINDS.get(str(getattr(entry, "label", "")), PhoneKind.OTHER)
                phone = normalise_phone(kind, number, self.region)
                if phone is not None:
                    phones.append(phone)
        emails = tuple(e for e in (contact_email(getattr(a, "email", None)) for a in item.email_addresses or ()) if e)
        given, surname = contact_text(item.given_name), contact_text(item.surname)
        company = contact_text(item.company_name)
        return Contact(
            item_id=item_id, change_key=str(item.changekey or ""),
            display_name=display_name(contact_text(item.display_name), contact_text(item.file_as), given, surname,
                                      company, emails),
            given_name=given, surname=surname, company=company, title=contact_text(item.job_title),
            emails=emails, phones=tuple(phones), folder=path)
