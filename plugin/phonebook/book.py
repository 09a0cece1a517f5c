"""The phonebook snapshot: every dialable contact once, packed, and each view's book built from it on demand.

A snapshot is read from the store in one transaction with LDAP's reading (plugin.ldap.build
`iter_contacts`, display-name order) and turned into `BookEntry`s; contacts without a dialable number are
left out (a phone cannot call them). A view (plugin.ldap.access `View`: the mailboxes a user sees, as
over LDAP) gets its `Book` by merging its mailboxes' entries in display-name order, once per snapshot.

Memory: the snapshot lives beside LDAP's index for the daemon's life, so it keeps each entry as one
packed string (plugin.phonebook.entries `pack`, ~0.2 KB a contact instead of ~0.85 KB as objects) and
the mailboxes' lists as int arrays; a book is a tuple of those strings, unpacked only for the page and
search a request needs (`Entries`).

A book's `version` is a digest of its content (the digests of the mailboxes it shows), not a counter:
an unchanged book keeps its ETag across a re-read of the store and a daemon restart, so phones polling
get 304 unless what they show changed.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from pbxsync.plugin.ldap.access import View
from pbxsync.plugin.ldap.build import iter_contacts
from pbxsync.plugin.phonebook.entries import BookEntry, Dialer, book_entry, matches, pack, unpack


class Entries(Sequence[BookEntry]):
    """A book's packed entries as `BookEntry`s, unpacked when read (a page, a search)."""

    __slots__ = ("packed",)

    def __init__(self, packed: tuple[str, ...]) -> None:
        self.packed = packed

    def __len__(self) -> int:
        return len(self.packed)

    @overload
    def __getitem__(self, at: int) -> BookEntry: ...
    @overload
    def __getitem__(self, at: slice) -> Sequence[BookEntry]: ...
    def __getitem__(self, at: int | slice) -> BookEntry | Sequence[BookEntry]:
        if isinstance(at, slice):
            return Entries(self.packed[at])
        return unpack(self.packed[at])

    def __iter__(self) -> Iterator[BookEntry]:
        return map(unpack, self.packed)

    def matching(self, query: str) -> Entries:
        """The entries a phone's search finds (plugin.phonebook.entries `matches`)."""
        return Entries(tuple(p for p, entry in zip(self.packed, self, strict=True) if matches(entry, query)))


@dataclass(frozen=True)
class Book:
    version: str  # hex digest of what the book holds
    packed: tuple[str, ...]  # entries in display-name order (entries.pack)

    @property
    def entries(self) -> Entries:
        return Entries(self.packed)


@dataclass
class Snapshot:
    by_mailbox: dict[str, array[int]] = field(default_factory=dict)  # positions in `everything`, ascending
    digests: dict[str, str] = field(default_factory=dict)  # mailbox -> digest of its entries
    everything: tuple[str, ...] = ()  # every packed entry in display-name order
    _books: dict[frozenset[str] | None, Book] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.everything)

    def book(self, view: View) -> Book:
        """The book of a view's mailboxes (None: every mailbox), built on the first ask."""
        key = view.mailboxes
        found = self._books.get(key)
        if found is None:
            found = self._books[key] = self._build(key)
        return found

    def _build(self, mailboxes: frozenset[str] | None) -> Book:
        boxes = sorted(self.by_mailbox if mailboxes is None else mailboxes & self.by_mailbox.keys())
        version = hashlib.blake2b(digest_size=16)
        for box in boxes:
            version.update(f"{box}\0{self.digests[box]}\0".encode())
        if mailboxes is None:
            return Book(version.hexdigest(), self.everything)
        everything = self.everything
        positions: Iterator[int] = heapq.merge(*(self.by_mailbox[b] for b in boxes))
        return Book(version.hexdigest(), tuple(everything[p] for p in positions))


def _fingerprint(entry: BookEntry) -> bytes:
    """Everything a document may show of an entry, unambiguously separated."""
    parts = [entry.name, entry.first_name, entry.last_name, entry.company]
    parts += [f"{n.kind}:{n.dial}" for n in entry.numbers]
    return ("\x1f".join(parts) + "\x1e").encode("utf-8", "surrogatepass")


def read_snapshot(conn: sqlite3.Connection, dialer: Dialer, previous: Snapshot | None = None) -> Snapshot:
    """The store's contacts as a snapshot (runs in a worker thread: a sync may be writing meanwhile).

    An entry packed the same as the `previous` snapshot's entry at its place in the mailbox is that
    very string: while the old snapshot serves beside the one being read, the two share every entry a
    sync did not touch (memory: one copy plus what changed, not two)."""
    snapshot = Snapshot()
    hashes: dict[str, hashlib.blake2b] = {}
    everything: list[str] = []
    before = previous.by_mailbox if previous is not None else {}
    old = previous.everything if previous is not None else ()
    for row, phones in iter_contacts(conn):
        entry = book_entry(row, phones, dialer)
        if not entry.numbers:
            continue
        positions = snapshot.by_mailbox.setdefault(row.mailbox, array("I"))
        hashes.setdefault(row.mailbox, hashlib.blake2b(digest_size=16)).update(_fingerprint(entry))
        packed = pack(entry)
        kept = before.get(row.mailbox)
        if kept is not None and len(positions) < len(kept) and old[kept[len(positions)]] == packed:
            packed = old[kept[len(positions)]]
        positions.append(len(everything))
        everything.append(packed)
    snapshot.everything = tuple(everything)
    snapshot.by_mailbox = {box: array("I", ids) for box, ids in snapshot.by_mailbox.items()}  # no spare room
    snapshot.digests = {box: h.hexdigest() for box, h in hashes.items()}
    return snapshot
