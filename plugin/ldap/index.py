"""The in-memory phonebook: entries built once from SQLite, with their BER pre-encoded and indexes.

A search never touches SQLite. `build_index` turns plain rows into an immutable `Index`; the server
swaps in a new one when the store changes. Lookup structures:

- per attribute, a dict from the folded value to entry ids (equality),
- per attribute, a "column": all folded values joined by NUL, scanned with `str.find` (substrings:
  prefix = find("\\0x"), suffix = find("x\\0"), contains = find("x")), which is a C loop over memory.

Entry ids are positions in display-name order, and every posting list and column is in id order, so
candidates stream out already sorted and a size-limited search stops after the first matches.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from plugin.ldap.ber import SET, encode_length, encode_text, sequence, tlv
from plugin.ldap.numbers import NumberForms
from plugin.ldap.protocol import SEARCH_ENTRY
from plugin.ldap.schema import (
    ATTR_COUNT,
    CN,
    DISPLAY_NAME,
    FAX,
    GIVEN_NAME,
    HOME_PHONE,
    MAIL,
    MOBILE,
    NAMES,
    NUMBER_ATTRS,
    OBJECT_CLASS,
    ORG,
    OU,
    SN,
    TELEPHONE,
    TITLE,
    UID,
    clean,
    fold,
)

_ENTRY_TAG = bytes([SEARCH_ENTRY])
PERSON_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")
_PERSON_FOLDED = tuple(fold(c) for c in PERSON_CLASSES)
_PHONE_ATTR = {"business": TELEPHONE, "other": TELEPHONE, "mobile": MOBILE, "home": HOME_PHONE, "fax": FAX}
_EMPTY: tuple[str, ...] = ()


@lru_cache(maxsize=4096)
def normalise_dn(dn: str) -> str:
    """Case- and space-insensitive DN form for comparisons (our DNs contain no escaped characters)."""
    parts = []
    for rdn in dn.split(","):
        attr, _, value = rdn.partition("=")
        parts.append(f"{attr.strip().lower()}={fold(value)}")
    return ",".join(parts) if dn.strip() else ""


def encode_attribute(name: str, values: Sequence[str]) -> bytes:
    """PartialAttribute ::= SEQUENCE { type, vals SET OF value }."""
    return sequence(encode_text(name), tlv(SET, b"".join(encode_text(v) for v in values)))


class Entry:
    """One served entry: BER of its DN and attributes in one blob, plus the folded values for matching."""

    __slots__ = ("blob", "eid", "mailbox", "match", "offsets")

    def __init__(self, blob: bytes, offsets: array[int], mailbox: str, match: tuple[tuple[str, ...], ...]) -> None:
        self.blob = blob  # DN OCTET STRING, then each present attribute's PartialAttribute, in position order
        self.offsets = offsets  # offsets[p]..offsets[p + 1] is attribute p (empty when absent)
        self.mailbox = mailbox  # owner; "" for the base entry
        self.match = match  # folded values (names) or digit forms (numbers) per attribute position
        self.eid = -1  # position in Index.entries; -1 for the base entry

    def attribute_ber(self, pos: int) -> bytes:
        return self.blob[self.offsets[pos]:self.offsets[pos + 1]]

    def has(self, pos: int) -> bool:
        return self.offsets[pos] != self.offsets[pos + 1]

    def search_entry_op(self) -> bytes:
        """SearchResultEntry with every attribute."""
        dn_end = self.offsets[0]
        attrs = len(self.blob) - dn_end
        return (bytes([SEARCH_ENTRY]) + encode_length(len(self.blob) + 1 + len(encode_length(attrs)))
                + self.blob[:dn_end] + b"\x30" + encode_length(attrs) + self.blob[dn_end:])

    def selected_op(self, positions: Iterable[int]) -> bytes:
        offsets, blob = self.offsets, self.blob
        parts = [blob[offsets[p]:offsets[p + 1]] for p in positions]
        size = 0
        for part in parts:
            size += len(part)
        dn_end = offsets[0]
        inner = encode_length(size)
        return b"".join((_ENTRY_TAG, encode_length(dn_end + 1 + len(inner) + size), blob[:dn_end], b"\x30", inner,
                         *parts))


_SHARED = frozenset((GIVEN_NAME, SN, ORG, TITLE))  # values many contacts have in common


def make_entry(dn: str, mailbox: str, values: list[tuple[str, ...]], forms: NumberForms,
               numbers: dict[int, list[tuple[str, ...]]] | None = None,
               pool: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> Entry:
    """`numbers` gives each number attribute's digit forms per value (from the stored e164/digits);
    `pool` (one per build) lets entries share equal folded values of attributes that repeat."""
    match: list[tuple[str, ...]] = []
    parts = [encode_text(dn)]
    ends = [len(parts[0])]
    size = ends[0]
    for pos in range(ATTR_COUNT):
        vals = values[pos]
        if not vals:
            match.append(_EMPTY)
        else:
            if pos in NUMBER_ATTRS:
                per_value = (numbers or {}).get(pos) or [forms.forms(v, None, "") for v in vals]
                match.append(per_value[0] if len(per_value) == 1 else tuple(f for fs in per_value for f in fs))
            elif pos == DISPLAY_NAME and values[CN] == vals:
                match.append(match[CN])
            elif pos == OBJECT_CLASS and vals == PERSON_CLASSES:
                match.append(_PERSON_FOLDED)
            else:
                folded = tuple(fold(v) for v in vals)
                if folded == vals:  # already in folded form (uid, most mail): keep one copy (memory)
                    folded = vals
                if pool is not None and pos in _SHARED:
                    folded = pool.setdefault(folded, folded)
                match.append(folded)
            encoded = encode_attribute(NAMES[pos], vals)
            parts.append(encoded)
            size += len(encoded)
        ends.append(size)
    # Built in one go (no over-allocation), two bytes per offset for all but huge entries.
    offsets = array("H" if size < 65536 else "I", ends)
    return Entry(b"".join(parts), offsets, mailbox, tuple(match))


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
    except (ValueError, TypeError):
        return _EMPTY
    if not isinstance(data, list):
        return _EMPTY
    return tuple(dict.fromkeys(clean(e, 320) for e in data if isinstance(e, str) and clean(e, 320)))


def contact_entry(row: ContactRow, phones: Iterable[PhoneRow], base_dn: str,
                  forms: NumberForms,
                  pool: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> tuple[str, Entry]:
    """The entry and its normalised DN."""
    uid, dn = contact_dn(row.mailbox, row.item_id, base_dn)
    display = clean(row.display_name)
    given, surname = clean(row.given_name), clean(row.surname)
    mails = _emails(row.emails)
    cn = display or " ".join(p for p in (given, surname) if p) or (mails[0] if mails else "") or uid
    values: list[tuple[str, ...]] = [_EMPTY] * ATTR_COUNT
    values[OBJECT_CLASS] = PERSON_CLASSES
    values[UID] = (uid,)
    values[CN] = (cn,)
    values[DISPLAY_NAME] = (cn,)
    values[SN] = (surname or cn,)  # person requires sn; phones that show "sn, givenName" still get a name
    values[GIVEN_NAME] = (given,) if given else _EMPTY
    values[ORG] = (clean(row.company),) if clean(row.company) else _EMPTY
    values[TITLE] = (clean(row.title),) if clean(row.title) else _EMPTY
    values[MAIL] = mails
    by_attr: dict[int, list[str]] = {}
    number_forms: dict[int, list[tuple[str, ...]]] = {}
    for phone in phones:
        pos = _PHONE_ATTR.get(phone.kind, TELEPHONE)
        raw = clean(phone.raw, 64)
        if not raw or raw in by_attr.get(pos, ()):
            continue
        by_attr.setdefault(pos, []).append(raw)
        number_forms.setdefault(pos, []).append(forms.forms(raw, phone.e164, phone.digits))
    for pos, raws in by_attr.items():
        values[pos] = tuple(raws)
    return normalise_dn(dn), make_entry(dn, row.mailbox, values, forms, number_forms, pool)


def base_entry(base_dn: str, forms: NumberForms) -> Entry:
    values: list[tuple[str, ...]] = [_EMPTY] * ATTR_COUNT
    values[OBJECT_CLASS] = ("top", "organizationalUnit")
    first = base_dn.split(",", 1)[0]
    attr, _, value = first.partition("=")
    if attr.strip().lower() == "ou":
        values[OU] = (value.strip(),)
    return make_entry(base_dn, "", values, forms)


class Column:
    """All values of one attribute joined by NUL, for substring scans in C (`str.find`)."""

    __slots__ = ("owners", "starts", "text")

    def __init__(self, values: Sequence[str], owners: array[int]) -> None:
        """`values` in id order (NULs removed by the caller); `owners[k]` is the id holding `values[k]`."""
        starts = array("i", bytes(4 * len(values)))  # sized once: no spare room left by appends
        offset = 1
        for k, value in enumerate(values):
            starts[k] = offset
            offset += len(value) + 1
        self.text = "\0" + "\0".join(values) + "\0"
        self.starts = starts
        self.owners = owners

    def scan(self, needle: str, anchor_start: bool, anchor_end: bool) -> Iterator[int]:
        """Ids of entries with a value containing `needle` (at its start/end if anchored), ascending."""
        if not self.starts:
            return
        pattern = ("\0" if anchor_start else "") + needle + ("\0" if anchor_end else "")
        shift = 1 if anchor_start else 0
        text, starts, owners = self.text, self.starts, self.owners
        find = text.find
        last_value = len(starts) - 1
        end = len(text)
        pos = 0
        previous = -1
        while True:
            hit = find(pattern, pos)
            if hit < 0:
                return
            k = bisect_right(starts, hit + shift) - 1  # >= 0: the text starts with a separator
            owner = owners[k]
            if owner != previous:
                previous = owner
                yield owner
            pos = starts[k + 1] - 1 if k < last_value else end

    def first(self, needle: str, anchor_start: bool, anchor_end: bool, limit: int) -> list[int]:
        """The first `limit` ids `scan` would yield, in one tight loop."""
        found: list[int] = []
        if not self.starts:
            return found
        pattern = ("\0" if anchor_start else "") + needle + ("\0" if anchor_end else "")
        shift = 1 if anchor_start else 0
        text, starts, owners = self.text, self.starts, self.owners
        find = text.find
        last_value = len(starts) - 1
        end = len(text)
        pos = 0
        previous = -1
        while len(found) < limit:
            hit = find(pattern, pos)
            if hit < 0:
                break
            k = bisect_right(starts, hit + shift) - 1
            owner = owners[k]
            if owner != previous:
                previous = owner
                found.append(owner)
            pos = starts[k + 1] - 1 if k < last_value else end
        return found


class SortedKeys:
    """One attribute's values sorted, with their entry ids: equality and prefix lookups by bisection."""

    __slots__ = ("ascending", "ids", "keys")

    def __init__(self, values: list[str], owners: array[int]) -> None:
        """`values` in id order, `owners[k]` the id holding `values[k]`. A stable sort of positions by
        value keeps equal values in id order: the order of sorting (value, id) pairs, without the pairs
        (build memory)."""
        order = sorted(range(len(values)), key=values.__getitem__)
        self.keys = [values[k] for k in order]
        self.ids = array("i", [owners[k] for k in order])
        # True for the attribute entries are ordered by (cn, displayName): any key range is then an
        # ascending run of ids and needs no sorting.
        self.ascending = all(a < b for a, b in zip(self.ids, self.ids[1:], strict=False))

    def equal(self, value: str) -> list[int]:
        lo = bisect_left(self.keys, value)
        hi = bisect_right(self.keys, value, lo)
        return sorted(set(self.ids[lo:hi]))

    def prefix_range(self, value: str) -> tuple[int, int]:
        lo = bisect_left(self.keys, value)
        return lo, bisect_left(self.keys, value + "\U0010ffff", lo)

    def ids_in(self, lo: int, hi: int) -> list[int]:
        return sorted(set(self.ids[lo:hi]))


_OP_CACHE_SELECTIONS = 16
_OP_CACHE_BYTES = 64 * 1024 * 1024

GRAM = 4  # digit n-gram length of the number index; shorter number fragments are scanned instead
TEXT_GRAM = 3  # n-gram length of the cn/sn index


class Grams:
    """n-gram -> ascending entry ids: digit 4-grams for numbers (`*4711*` reads one short list) and
    3-grams for names (`*mill*` intersects two lists instead of scanning every name)."""

    __slots__ = ("n", "postings")

    def __init__(self, n: int) -> None:
        self.n = n
        self.postings: dict[str, array[int]] = {}

    def add(self, entry_id: int, values: tuple[str, ...]) -> None:
        n = self.n
        grams: set[str] = set()
        for value in values:
            grams.update(value[j:j + n] for j in range(len(value) - n + 1))
        postings = self.postings
        for gram in grams:
            ids = postings.get(gram)
            if ids is None:
                postings[gram] = array("i", [entry_id])
            else:
                ids.append(entry_id)

    def rarest(self, needle: str) -> int:
        """How many entries hold the needle's rarest n-gram (0 if one is absent)."""
        n, postings = self.n, self.postings
        return min(len(postings.get(needle[j:j + n], ())) for j in range(len(needle) - n + 1))

    def lookup(self, needle: str) -> list[int] | array[int]:
        """Ascending ids of entries with a value containing `needle` (len >= n): exact when the needle is
        one gram long, else a superset (the two rarest grams intersected)."""
        n = self.n
        lists: list[array[int]] = []
        for j in range(len(needle) - n + 1):
            ids = self.postings.get(needle[j:j + n])
            if ids is None:
                return []
            lists.append(ids)
        lists.sort(key=len)
        if len(lists) == 1:
            return lists[0]
        return sorted(set(lists[0]).intersection(lists[1]))


def message_header(size: int) -> bytes:
    """The SEQUENCE tag and length of an LDAPMessage whose body is `size` bytes long."""
    if size < 128:
        return _SHORT_HEADERS[size]
    if size < 256:
        return bytes((0x30, 0x81, size))
    if size < 65536:
        return bytes((0x30, 0x82, size >> 8, size & 0xFF))
    return b"\x30" + encode_length(size)


_SHORT_HEADERS = [bytes((0x30, n)) for n in range(128)]


def _message(prefix: bytes, op: bytes) -> bytes:
    return message_header(len(prefix) + len(op)) + prefix + op


@dataclass(slots=True)
class Index:
    base_dn: str
    base_key: str
    base: Entry
    entries: list[Entry]  # contacts in display-name order; an entry's id is its position
    # Folded uid -> entry id. Every contact DN is `uid=<uid>,<base_dn>`, so the uid alone identifies it
    # and the key is the uid string the entry already holds (no per-entry DN string kept: memory).
    by_uid: dict[str, int]
    dn_suffix: str  # what follows the uid in a contact's normalised DN (",ou=...")
    sorted_keys: list[SortedKeys]  # per attribute position (objectClass: empty)
    columns: list[Column]
    grams: dict[int, Grams]  # per number attribute (4-grams) and for cn/displayName/sn (3-grams)
    mailboxes: frozenset[str]
    sort_ranks: dict[int, list[int]] = field(default_factory=dict)  # per attribute, built on first use
    # Encoded SearchResultEntry ops per attribute selection, filled as entries are served: phones ask
    # for the same few attribute lists every time. Keyed by selection only (not message ID: clients
    # count their IDs up), so a request just wraps the cached op. Dropped wholesale past _OP_CACHE_BYTES.
    op_cache: dict[tuple[int, ...] | None, list[bytes | None]] = field(default_factory=dict)
    op_cache_bytes: int = 0
    # Planned candidates per (filter, need) and the base entry's verdict per filter: phones repeat the
    # same few filters, and both are pure functions of the filter and this snapshot. Small answers only,
    # dropped wholesale when full (see plugin.ldap.search).
    plan_cache: dict[tuple[object, int], tuple[array[int], bool] | None] = field(default_factory=dict)
    base_verdicts: dict[object, bool | None] = field(default_factory=dict)

    def find(self, key: str) -> int | None:
        """The id of the contact whose normalised DN is `key` (see `normalise_dn`), if any."""
        suffix = self.dn_suffix
        if not key.startswith("uid=") or len(key) < len(suffix) + 4 or not key.endswith(suffix):
            return None
        return self.by_uid.get(key[4:len(key) - len(suffix)])

    def entry_op(self, entry: Entry, selection: tuple[int, ...] | None) -> bytes:
        """The SearchResultEntry op carrying `entry` with the selected attributes."""
        eid = entry.eid
        if eid < 0 or eid >= len(self.entries) or self.entries[eid] is not entry:  # base entry, or an old index
            return entry.search_entry_op() if selection is None else entry.selected_op(selection)
        cache = self.op_cache.get(selection)
        if cache is None:
            if len(self.op_cache) >= _OP_CACHE_SELECTIONS:
                self.op_cache.clear()
                self.op_cache_bytes = 0
            cache = self.op_cache[selection] = [None] * len(self.entries)
        op = cache[eid]
        if op is None:
            op = cache[eid] = entry.search_entry_op() if selection is None else entry.selected_op(selection)
            self.op_cache_bytes += len(op)
            if self.op_cache_bytes > _OP_CACHE_BYTES:
                self.op_cache.clear()
                self.op_cache_bytes = 0
        return op

    def messages(self, entries: list[Entry], selection: tuple[int, ...] | None, prefix: bytes) -> list[bytes]:
        """The LDAPMessage pieces (header, message ID, op per entry) carrying `entries`, to be joined."""
        parts: list[bytes] = []
        append = parts.append
        cache = self.op_cache.get(selection)
        own = self.entries
        count = len(own)
        id_size = len(prefix)
        for entry in entries:
            eid = entry.eid
            op = cache[eid] if cache is not None and 0 <= eid < count and own[eid] is entry else None
            if op is None:
                op = self.entry_op(entry, selection)
                cache = self.op_cache.get(selection)
            size = id_size + len(op)
            append(_SHORT_HEADERS[size] if size < 128 else message_header(size))
            append(prefix)
            append(op)
        return parts

    def entry_message(self, entry: Entry, selection: tuple[int, ...] | None, prefix: bytes) -> bytes:
        """The LDAPMessage (with message-ID `prefix`) carrying `entry` with the selected attributes."""
        return _message(prefix, self.entry_op(entry, selection))

    def rank(self, attr: int) -> list[int]:
        """Position of every entry when sorted by `attr` (server-side sort)."""
        ranks = self.sort_ranks.get(attr)
        if ranks is None:
            order = sorted(range(len(self.entries)),
                           key=lambda i: (self.entries[i].match[attr][:1] or ("\uffff",))[0])
            ranks = [0] * len(order)
            for position, i in enumerate(order):
                ranks[i] = position
            self.sort_ranks[attr] = ranks
        return ranks


def build_index(contacts: Iterable[tuple[ContactRow, list[PhoneRow]]], base_dn: str,
                forms: NumberForms) -> Index:
    pool: dict[tuple[str, ...], tuple[str, ...]] = {}
    keyed = [contact_entry(row, phones, base_dn, forms, pool) for row, phones in contacts]
    del pool
    keyed.sort(key=lambda ke: (ke[1].match[CN][0], ke[1].mailbox, ke[0]))
    built = [entry for _, entry in keyed]
    del keyed
    by_uid = {entry.match[UID][0]: i for i, entry in enumerate(built)}
    grams = {pos: Grams(GRAM) for pos in NUMBER_ATTRS}
    grams[CN] = grams[DISPLAY_NAME] = Grams(TEXT_GRAM)  # displayName always carries cn's value
    grams[SN] = Grams(TEXT_GRAM)
    for i, entry in enumerate(built):
        entry.eid = i
        match = entry.match
        for pos in (*NUMBER_ATTRS, CN, SN):
            if match[pos]:
                grams[pos].add(i, match[pos])
    # One attribute at a time, so the values of only one are gathered at once (peak memory).
    columns: list[Column] = []
    sorted_keys: list[SortedKeys] = []
    for pos in range(ATTR_COUNT):
        values: list[str] = []
        owners = array("i")
        if pos:  # objectClass is the same everywhere: never indexed
            for i, entry in enumerate(built):
                held = entry.match[pos]
                if held:
                    values.extend(held)
                    owners.extend([i] * len(held))
        owners = array("i", owners)  # without the spare room appends leave
        columns.append(Column([v.replace("\0", "") for v in values], owners))
        sorted_keys.append(SortedKeys(values, owners))
        del values, owners
    return Index(
        base_dn=base_dn,
        base_key=normalise_dn(base_dn),
        base=base_entry(base_dn, forms),
        entries=built,
        by_uid=by_uid,
        dn_suffix=normalise_dn(f"uid=x,{base_dn}")[len("uid=x"):],
        sorted_keys=sorted_keys,
        columns=columns,
        grams=grams,
        mailboxes=frozenset(e.mailbox for e in built),
    )


# ---- reading the store ----------------------------------------------------------------------------

_CONTACTS_SQL = ("SELECT id, mailbox, item_id, display_name, given_name, surname, company, title, emails "
                 "FROM contacts")
_PHONES_SQL = "SELECT contact_id, kind, raw, e164, digits FROM contact_phones ORDER BY contact_id, rowid"


def read_contacts(conn: sqlite3.Connection) -> list[tuple[ContactRow, list[PhoneRow]]]:
    """Both tables in one read transaction, so a sync committing meanwhile is seen whole or not at all."""
    return list(iter_contacts(conn))


def iter_contacts(conn: sqlite3.Connection) -> Iterator[tuple[ContactRow, list[PhoneRow]]]:
    """`read_contacts` as a stream, so a build never holds every row and every entry at once (peak
    memory); the read transaction lasts until the stream is exhausted or closed."""
    conn.execute("BEGIN")
    try:
        phone_rows = conn.execute(_PHONES_SQL).fetchall()
        phones: dict[int, list[PhoneRow]] = {}
        for contact_id, kind, raw, e164, digits in phone_rows:
            phones.setdefault(contact_id, []).append(
                PhoneRow(str(kind), str(raw or ""), str(e164) if e164 else None, str(digits or "")))
        del phone_rows
        for r in conn.execute(_CONTACTS_SQL):
            yield (ContactRow(sys.intern(str(r[1]).lower()), str(r[2]), *(str(v or "") for v in r[3:])),
                   phones.pop(r[0], []))
    finally:
        conn.execute("COMMIT")
