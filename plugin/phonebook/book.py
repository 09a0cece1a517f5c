"""The phonebook snapshot: every dialable contact once, and each view's book built from it on demand.

A snapshot is read from the store in one transaction with LDAP's reading (plugin.ldap.build
`iter_contacts`, display-name order) and turned into `BookEntry`s; contacts without a dialable number are
left out (a phone cannot call them). A view (plugin.ldap.access `View`: the mailboxes a user sees, as
over LDAP) gets its `Book` by merging its mailboxes' entries in display-name order, once per snapshot.

A book's `version` is a digest of its content (the digests of the mailboxes it shows), not a counter:
an unchanged book keeps its ETag across a re-read of the store and a daemon restart, so phones polling
get 304 unless what they show changed.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from pbxsync.plugin.ldap.access import View
from pbxsync.plugin.ldap.build import iter_contacts
from pbxsync.plugin.phonebook.entries import BookEntry, Dialer, book_entry


@dataclass(frozen=True)
class Book:
    version: str  # hex digest of what the book holds
    entries: tuple[BookEntry, ...]


@dataclass
class Snapshot:
    # Per mailbox: (position in display-name order, entry), ascending.
    by_mailbox: dict[str, list[tuple[int, BookEntry]]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # mailbox -> digest of its entries
    everything: tuple[BookEntry, ...] = ()
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
            entries = self.everything
        else:
            merged: Iterator[tuple[int, BookEntry]] = heapq.merge(*(self.by_mailbox[b] for b in boxes))
            entries = tuple(entry for _, entry in merged)
        return Book(version.hexdigest(), entries)


def _fingerprint(entry: BookEntry) -> bytes:
    """Everything a document may show of an entry, unambiguously separated."""
    parts = [entry.name, entry.first_name, entry.last_name, entry.company]
    parts += [f"{n.kind}:{n.dial}" for n in entry.numbers]
    return ("\x1f".join(parts) + "\x1e").encode("utf-8", "surrogatepass")


def read_snapshot(conn: sqlite3.Connection, dialer: Dialer) -> Snapshot:
    """The store's contacts as a snapshot (runs in a worker thread: a sync may be writing meanwhile)."""
    snapshot = Snapshot()
    hashes: dict[str, hashlib.blake2b] = {}
    everything: list[BookEntry] = []
    for row, phones in iter_contacts(conn):
        entry = book_entry(row, phones, dialer)
        if not entry.numbers:
            continue
        snapshot.by_mailbox.setdefault(row.mailbox, []).append((len(everything), entry))
        hashes.setdefault(row.mailbox, hashlib.blake2b(digest_size=16)).update(_fingerprint(entry))
        everything.append(entry)
    snapshot.everything = tuple(everything)
    snapshot.digests = {box: h.hexdigest() for box, h in hashes.items()}
    return snapshot
