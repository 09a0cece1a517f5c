"""Building an index snapshot from the store's contact rows.

Rows stream in (any order) and their values go straight into per-attribute column builders, so a build
never holds an object per value: memory during a build is about the finished index plus one column.
Entries are then put in display-name order (folded cn, then mailbox, then uid) by one permutation.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pbxsync.plugin.ldap.columns import Column, ColumnBuilder, Grams
from pbxsync.plugin.ldap.index import Index, base_values
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.query import MAX_LIST_IDS
from pbxsync.plugin.ldap.schema import (
    ATTR_COUNT,
    ATTRIBUTES,
    CN,
    GRAMS,
    SHARED,
    STORED,
    UID,
    Source,
    clean,
    fold,
    phone_position,
)

# What contacts hold, by where the values come from (see schema.ATTRIBUTES).
_TEXT_STORED = tuple(pos for pos in STORED if ATTRIBUTES[pos].source is not Source.PHONES)
_PHONE_STORED = tuple(pos for pos in STORED if ATTRIBUTES[pos].source is Source.PHONES)


@dataclass(frozen=True, slots=True)
class ContactRow:
    mailbox: str
    item_id: str
    display_name: str
    given_name: str
    surname: str
    company: str
    title: str
    emails: str  # JSON list as stored


@dataclass(frozen=True, slots=True)
class PhoneRow:
    kind: str
    raw: str
    e164: str | None
    digits: str


def contact_dn(mailbox: str, item_id: str, base_dn: str) -> tuple[str, str]:
    """A DN that survives renames and re-syncs: a hash of the owner mailbox and Exchange item id."""
    uid = "c" + hashlib.sha256(f"{mailbox}\0{item_id}".encode()).hexdigest()[:20]
    return uid, f"uid={uid},{base_dn}"


def _emails(text: str) -> tuple[str, ...]:
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # RecursionError: absurdly nested JSON
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(dict.fromkeys(clean(e, 320) for e in data if isinstance(e, str) and clean(e, 320)))


def _one(text: str) -> tuple[str, ...]:
    return (text,) if text else ()


def _names(row: ContactRow) -> tuple[str, str, tuple[str, ...]]:
    """uid, cn (display name, else given + surname, else first e-mail, else uid) and e-mails of a row."""
    uid, _ = contact_dn(row.mailbox, row.item_id, "")
    mails = _emails(row.emails)
    given, surname = clean(row.given_name), clean(row.surname)
    cn = clean(row.display_name) or " ".join(p for p in (given, surname) if p) or (mails[0] if mails else "") or uid
    return uid, cn, mails


def common_name(row: ContactRow) -> str:
    """The name a contact is shown by (`cn`): for every phonebook pbxsync serves, LDAP or XML."""
    return clean(row.display_name) or _names(row)[1]  # the display name when there is one, as `_names` says


def contact_values(row: ContactRow, phones: Iterable[PhoneRow], forms: NumberForms
                   ) -> tuple[dict[int, tuple[str, ...]], dict[int, tuple[str, ...]]]:
    """One contact's values as served and as compared (numbers: as stored for comparing), per stored
    attribute position (schema.STORED), each from the source its row names."""
    uid, cn, mails = _names(row)
    given, surname = clean(row.given_name), clean(row.surname)
    by_source = {Source.UID: (uid,), Source.CN: (cn,),
                 Source.SURNAME: (surname or cn,),  # person requires sn: phones showing "sn, givenName" get a name
                 Source.GIVEN_NAME: _one(given), Source.COMPANY: _one(clean(row.company)),
                 Source.TITLE: _one(clean(row.title)), Source.EMAILS: mails}
    served = {pos: by_source[ATTRIBUTES[pos].source] for pos in _TEXT_STORED}
    compared = {pos: tuple(fold(v) for v in values) for pos, values in served.items()}
    raws: dict[int, list[str]] = {}
    digits: dict[int, list[str]] = {}  # what the number forms are derived from (see NumberForms.stored)
    for phone in phones:
        pos = phone_position(phone.kind)
        raw = clean(phone.raw, 64)
        if not raw or raw in raws.get(pos, ()):
            continue
        raws.setdefault(pos, []).append(raw)
        digits.setdefault(pos, []).extend(forms.stored(raw, phone.e164, phone.digits))
    for pos in _PHONE_STORED:
        served[pos] = tuple(raws.get(pos, ()))
        compared[pos] = tuple(dict.fromkeys(digits.get(pos, ())))
    return served, compared


def order_key(mailbox: str, cn_folded: str, uid: str) -> bytes:
    """Display-name order: folded cn, then owner mailbox, then uid, as one bytes key (NUL sorts below
    every character the values hold; UTF-8 byte order is code point order)."""
    return b"\0".join((cn_folded.encode(), mailbox.encode(), uid.encode()))


def row_order_key(row: ContactRow) -> bytes:
    uid, cn, _ = _names(row)
    return order_key(row.mailbox, fold(cn), uid)


class IndexBuilder:
    """Appends contacts, already in display-name order, straight to the final columns: a build holds
    no object per contact, only the columns growing (memory: about the finished index).

    With the `previous` index (the one serving while this one is built), a column whose values all came
    out the same is the previous one's column, and so are its n-gram lists (see ColumnBuilder): after a
    sync that edited a few contacts without moving them, the new index holds only what changed beside
    the old one. Reuse needs the values to be byte for byte the same, so it is right whatever changed.
    """

    def __init__(self, base_dn: str, forms: NumberForms, previous: Index | None = None) -> None:
        self.base_dn = base_dn
        self.forms = forms
        self.previous = previous
        self.served = {pos: ColumnBuilder(previous.original[pos] if previous else None) for pos in STORED}
        self.compared = {pos: ColumnBuilder(previous.folded[pos] if previous else None) for pos in STORED}
        self.boxes = array("I")
        self.box_numbers: dict[str, int] = {}
        self.last_key = b""

    def add(self, row: ContactRow, phones: Iterable[PhoneRow]) -> None:
        served, compared = contact_values(row, phones, self.forms)
        key = order_key(row.mailbox, compared[CN][0], served[UID][0])
        if key < self.last_key:
            raise ValueError("contacts must be added in display-name order (see row_order_key)")
        self.last_key = key
        for pos in STORED:
            self.served[pos].add(v.encode() for v in served[pos])
            self.compared[pos].add(v.encode() for v in compared[pos])
        self.boxes.append(self.box_numbers.setdefault(row.mailbox, len(self.box_numbers)))

    def finish(self) -> Index:
        original: list[Column | None] = [None] * ATTR_COUNT
        folded: list[Column | None] = [None] * ATTR_COUNT
        for pos in STORED:  # one attribute at a time, its builder freed as soon as it is done
            compared = self.compared.pop(pos).build(sort=True)
            served = self.served.pop(pos).build()
            if served.text == compared.text and served.starts == compared.starts and served.first == compared.first:
                served = compared  # uid, lower-case mail: one copy
            original[pos], folded[pos] = served, compared
        previous = self.previous
        grams = {pos: previous.grams[pos] if previous is not None and folded[pos] is previous.folded[pos]
                 else _grams(n, folded[pos]) for pos, n in GRAMS}
        for pos, source in SHARED:  # displayName is cn: the same columns and n-gram lists
            original[pos], folded[pos] = original[source], folded[source]
            if source in grams:
                grams[pos] = grams[source]
        names = tuple(sorted(self.box_numbers, key=self.box_numbers.__getitem__))
        boxes = array("H" if len(names) < 65536 else "I", self.boxes)
        return Index(self.base_dn, len(boxes), original, folded, grams, boxes, names, base_values(self.base_dn),
                     self.forms)


def _grams(n: int, column: Column | None) -> Grams:
    grams = Grams(n, MAX_LIST_IDS)  # longer lists are never read: only their length is kept
    if column is not None:
        for eid in range(len(column.first) - 1 if column.first is not None else column.value_count):
            values = column.values(eid)
            if values:
                grams.add(eid, [v.lstrip(b"+") for v in values])  # a fragment is digits only
    return grams.finish()


def build_index(contacts: Iterable[tuple[ContactRow, Iterable[PhoneRow]]], base_dn: str,
                forms: NumberForms) -> Index:
    """An index of rows in any order (they are sorted first: for tests and small phonebooks)."""
    builder = IndexBuilder(base_dn, forms)
    for row, phones in sorted(contacts, key=lambda contact: row_order_key(contact[0])):
        builder.add(row, phones)
    return builder.finish()


def build_from_store(conn: sqlite3.Connection, base_dn: str, forms: NumberForms,
                     previous: Index | None = None) -> Index:
    """An index of the store's contacts, streamed in display-name order (SQLite sorts, spilling to
    its temporary files rather than holding the rows in memory); `previous` lends its unchanged columns
    (see IndexBuilder)."""
    builder = IndexBuilder(base_dn, forms, previous)
    for row, phones in iter_contacts(conn):
        builder.add(row, phones)
    return builder.finish()


# ---- reading the store ----------------------------------------------------------------------------

# Contacts in display-name order with their phones as one JSON array each (in stored order).
_CONTACTS_SQL = """
SELECT c.mailbox, c.item_id, c.display_name, c.given_name, c.surname, c.company, c.title, c.emails,
       (SELECT json_group_array(json_array(p.kind, p.raw, p.e164, p.digits))
          FROM (SELECT kind, raw, e164, digits FROM contact_phones WHERE contact_id = c.id ORDER BY rowid) AS p)
  FROM contacts AS c
 ORDER BY pbxsync_ldap_order(c.mailbox, c.item_id, c.display_name, c.given_name, c.surname, c.emails)
"""


def _sql_order_key(mailbox: str, item_id: str, display_name: str | None, given_name: str | None,
                   surname: str | None, emails: str | None) -> bytes:
    # Lower-cased here as iter_contacts does (SQLite's lower() knows ASCII only: "Ärzte@x.de").
    return row_order_key(ContactRow(str(mailbox).lower(), item_id, display_name or "", given_name or "",
                                    surname or "", "", "", emails or ""))


def _phones(text: str | None) -> list[PhoneRow]:
    phones = []
    for kind, raw, e164, digits in json.loads(text or "[]"):
        phones.append(PhoneRow(str(kind), str(raw or ""), str(e164) if e164 else None, str(digits or "")))
    return phones


def read_contacts(conn: sqlite3.Connection) -> list[tuple[ContactRow, list[PhoneRow]]]:
    """Both tables in one read transaction, so a sync committing meanwhile is seen whole or not at all."""
    return list(iter_contacts(conn))


def iter_contacts(conn: sqlite3.Connection) -> Iterator[tuple[ContactRow, list[PhoneRow]]]:
    """`read_contacts` as a stream in display-name order; the read transaction lasts until the stream is
    exhausted or closed."""
    conn.create_function("pbxsync_ldap_order", 6, _sql_order_key, deterministic=True)
    conn.execute("BEGIN")
    try:
        for r in conn.execute(_CONTACTS_SQL):
            yield (ContactRow(sys.intern(str(r[0]).lower()), str(r[1]), *(str(v or "") for v in r[2:8])),
                   _phones(r[8]))
    finally:
        conn.execute("COMMIT")
