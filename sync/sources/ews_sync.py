"""SyncFolderItems over exchangelib, one folder at a time, with one unreadable item never losing the page.

exchangelib defect (5.6, pinned by tests/unit/test_ews_item_tolerance.py): `SyncFolderItems` builds each
changed item inside the generator that yields them, so one item it cannot parse raises out of that
generator and the rest of the page is lost: an element it has no class for (`ValueError: Item type ...
was unexpected`), a Birthday or DateTime of 25 characters that is not ISO 8601 (`ValueError` from
`fromisoformat`), a Body with an unknown BodyType (`KeyError`). `TolerantSyncFolderItems` turns such an
item into an `Unreadable` carrying its ItemId, so the caller skips it and the folder's sync goes on.

Runs in exchangelib's worker thread (sync.sources.ews calls it through `asyncio.to_thread`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from exchangelib import Account
from exchangelib.fields import FieldPath
from exchangelib.folders import BaseFolder
from exchangelib.items import ID_ONLY
from exchangelib.properties import ItemId
from exchangelib.services import SyncFolderItems

from pbxsync.sync.errors import SourceDataError


@dataclass(frozen=True)
class Unreadable:
    """A changed item exchangelib could not parse."""

    item_id: str  # "" when the element carried no ItemId
    reason: str


class TolerantSyncFolderItems(SyncFolderItems):  # type: ignore[misc]  # exchangelib ships no type hints
    """SyncFolderItems whose unparseable items become `Unreadable` (see the module docstring)."""

    def _elem_to_obj(self, elem: Any) -> tuple[str, Any]:
        found = next(elem.iter(ItemId.response_tag()), None)  # before parsing: exchangelib clears what it read
        item_id = str(found.get("Id", "")) if found is not None else ""
        try:
            return super()._elem_to_obj(elem)  # type: ignore[no-any-return]
        except Exception as exc:  # any library error on one item: that item only
            change = self.change_types_map.get(elem.tag, self.CREATE)
            return change, Unreadable(item_id[:512], f"exchangelib could not read it ({type(exc).__name__})")


@dataclass
class FolderChanges:
    upserts: list[Any] = field(default_factory=list)  # exchangelib items (any class)
    deleted: list[str] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    state: str = ""
    complete: bool = True  # False: the page limit cut the round short; the state still advanced


def sync_folder_items(account: Account, folder: BaseFolder, sync_state: str, fields: Collection[FieldPath],
                      page_size: int, max_pages: int) -> FolderChanges:
    """Every change in `folder` since `sync_state` ("" = from the beginning), page by page."""
    out = FolderChanges()
    state = sync_state or None
    for _ in range(max_pages):
        svc = TolerantSyncFolderItems(account=account)
        for change, item in svc.call(folder=folder, shape=ID_ONLY, additional_fields=set(fields),
                                     sync_state=state, ignore=None, max_changes_returned=page_size,
                                     sync_scope=None):
            if isinstance(item, Exception):
                raise item  # an error for the request, not for one item: the folder fails
            if isinstance(item, Unreadable):
                out.unreadable.append(item)
            elif change == SyncFolderItems.DELETE:
                out.deleted.append(str(item.id))
            elif change in (SyncFolderItems.CREATE, SyncFolderItems.UPDATE):
                out.upserts.append(item)
        new_state = svc.sync_state
        if not isinstance(new_state, str) or not new_state:
            raise SourceDataError(f"EWS {account.primary_smtp_address}: no SyncState in the response")
        done = bool(svc.includes_last_item_in_range) or new_state == state
        state = new_state
        if done:
            out.state = state
            return out
    out.state, out.complete = state or "", False  # cut short: the engine keeps going next pass
    return out
