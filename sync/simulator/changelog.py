"""One folder's items and its change log: what incremental sync (SyncFolderItems, Graph delta) reads.

Every change is numbered by one sequence shared by the whole organisation; an item remembers the numbers
it was created and last changed at, a deleted item leaves a tombstone. A client's sync state is such a
number (`ids.encode_sync_state`): the changes after it are its next page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from pbxsync.sync.simulator.ids import make_change_key
from pbxsync.sync.simulator.records import Item


@dataclass(frozen=True)
class Change:
    kind: Literal["create", "update", "delete"]
    item_id: str
    record: Item | None  # None for deletes: only the id travels


@dataclass(frozen=True)
class ChangePage:
    changes: tuple[Change, ...]
    seq: int  # the state after this page
    includes_last: bool


@dataclass
class _Entry:
    record: Item
    created_seq: int
    changed_seq: int


@dataclass
class Folder:
    items: dict[str, _Entry] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (created, deleted)

    def records(self) -> list[Item]:
        return [entry.record for entry in self.items.values()]

    def get(self, item_id: str) -> Item | None:
        entry = self.items.get(item_id)
        return None if entry is None else entry.record

    def put(self, record: Item, seq: int) -> Item:
        """Stores `record` (created or replaced) as change number `seq`; returns it with its new change key."""
        old = self.items.get(record.item_id)
        record = replace(record, change_key=make_change_key(seq))
        if old is None:
            self.tombstones.pop(record.item_id, None)
            self.items[record.item_id] = _Entry(record, seq, seq)
        else:
            old.record, old.changed_seq = record, seq
        return record

    def remove(self, item_id: str, seq: int) -> bool:
        """Deletes the item as change number `seq`; False when there is no such item."""
        entry = self.items.pop(item_id, None)
        if entry is None:
            return False
        self.tombstones[item_id] = (entry.created_seq, seq)
        return True

    def changes_since(self, seq: int, max_changes: int, latest: int) -> ChangePage:
        """The first `max_changes` (at least one) changes after `seq`, oldest first; `latest` is the
        organisation's newest change number (the state a page that includes the last change ends at)."""
        pending: list[tuple[int, Change]] = []
        for item_id, entry in self.items.items():
            if entry.changed_seq > seq:
                kind: Literal["create", "update"] = "create" if entry.created_seq > seq else "update"
                pending.append((entry.changed_seq, Change(kind, item_id, entry.record)))
        for item_id, (created, deleted) in self.tombstones.items():
            if deleted > seq and created <= seq:
                pending.append((deleted, Change("delete", item_id, None)))
        pending.sort(key=lambda p: p[0])
        page = pending[:max(1, max_changes)]
        includes_last = len(page) == len(pending)
        new_seq = latest if includes_last else page[-1][0]
        return ChangePage(tuple(c for _, c in page), max(new_seq, seq), includes_last)
