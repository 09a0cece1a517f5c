"""The in-memory phonebook: one immutable snapshot of every contact, in column form, with its lookups.

A search never touches SQLite. `plugin.ldap.build` makes an `Index` from the store's rows; the server
swaps in a new one when the store changes. Per attribute position the index holds two columns (see
`plugin.ldap.columns`): the values as served (`original`) and as compared (`folded`: caseIgnoreMatch
forms for names, digit forms for numbers), the latter with a sorted order (equality and prefixes) and,
for names and numbers, n-gram lists (`*mill*`, `*4711*`). Entries are ids: positions in display-name
order, so candidates stream out already sorted and a size-limited search stops after the first matches.
`Entry` is a two-field view of one id; nothing is kept per contact but its values (memory: ~0.5 KB per
contact instead of ~2.6 KB as objects).

Answers are encoded from the original columns when sent, and the encoded SearchResultEntry ops are
remembered per attribute selection in a bounded cache: phones ask for the same few attribute lists.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import overload

from pbxsync.plugin.ldap.ber import SET, encode_length, encode_text, sequence, tlv
from pbxsync.plugin.ldap.columns import Column, Grams
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import SEARCH_ENTRY
from pbxsync.plugin.ldap.schema import (
    ATTR_COUNT,
    BASE_CLASSES,
    NAMES,
    NUMBER_ATTRS,
    OBJECT_CLASS,
    OU,
    PERSON_CLASSES,
    UID,
    fold,
)

_ENTRY_TAG = bytes([SEARCH_ENTRY])
_PERSON_FOLDED = tuple(fold(c) for c in PERSON_CLASSES)
_EMPTY: tuple[str, ...] = ()
ALL_POSITIONS = tuple(range(ATTR_COUNT))

_OP_CACHE_SELECTIONS = 16
_OP_CACHE_BYTES = 4 * 1024 * 1024  # encoded answers remembered, all selections together (~15k entries)


@lru_cache(maxsize=4096)
def normalise_dn(dn: str) -> str:
    """Case- and space-insensitive DN form for comparisons (our DNs contain no escaped characters)."""
    parts = []
    for rdn in dn.split(","):
        attr, _, value = rdn.partition("=")
        parts.append(f"{attr.strip().lower()}={fold(value)}")
    return ",".join(parts) if dn.strip() else ""


def encode_attribute(name: str, values: Sequence[str | bytes]) -> bytes:
    """PartialAttribute ::= SEQUENCE { type, vals SET OF value }."""
    return sequence(encode_text(name), tlv(SET, b"".join(encode_text(v) for v in values)))


_NAME_TLVS = tuple(encode_text(name) for name in NAMES)
_PERSON_CLASSES_BER = encode_attribute(NAMES[OBJECT_CLASS], PERSON_CLASSES)


def _short_or_long(size: int) -> bytes:
    return _LENGTHS[size] if size < 128 else encode_length(size)


_LENGTHS = [bytes([n]) for n in range(128)]


def _attribute_ber(pos: int, values: list[bytes]) -> bytes:
    """`encode_attribute` for values already in UTF-8, without the intermediate objects."""
    if len(values) == 1:
        value = values[0]
        body = b"\x04" + _short_or_long(len(value)) + value
    else:
        body = b"".join([b"\x04" + _short_or_long(len(v)) + v for v in values])
    name = _NAME_TLVS[pos]
    inner = len(name) + 1 + len(_short_or_long(len(body))) + len(body)
    return b"".join((b"\x30", _short_or_long(inner), name, b"\x31", _short_or_long(len(body)), body))


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


class Entry:
    """One entry of one snapshot: the contact with id `eid`, or the base entry (eid -1)."""

    __slots__ = ("eid", "index")

    def __init__(self, index: Index, eid: int) -> None:
        self.index = index
        self.eid = eid

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and other.index is self.index and other.eid == self.eid

    def __hash__(self) -> int:
        return hash((id(self.index), self.eid))

    def __repr__(self) -> str:
        return f"Entry({self.eid}, {self.dn!r})"

    @property
    def mailbox(self) -> str:
        """The owner mailbox; "" for the base entry."""
        return self.index.mailbox_of(self.eid)

    @property
    def dn(self) -> str:
        return self.index.dn_of(self.eid)

    def folded(self, pos: int) -> tuple[str, ...]:
        """The values of attribute `pos` as compared: folded names, or every digit form of numbers."""
        return self.index.folded_values(self.eid, pos)

    def original(self, pos: int) -> tuple[str, ...]:
        """The values of attribute `pos` as served."""
        return self.index.original_values(self.eid, pos)

    def has(self, pos: int) -> bool:
        return bool(self.index.original_values(self.eid, pos))


class EntryList(Sequence[Entry]):
    """The contacts of a snapshot as a sequence of views (made on access, never stored)."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: Index) -> None:
        self.snapshot = snapshot

    def __len__(self) -> int:
        return self.snapshot.count

    @overload
    def __getitem__(self, i: int) -> Entry: ...

    @overload
    def __getitem__(self, i: slice) -> list[Entry]: ...

    def __getitem__(self, i: int | slice) -> Entry | list[Entry]:
        if isinstance(i, slice):
            return [Entry(self.snapshot, k) for k in range(*i.indices(self.snapshot.count))]
        if not -self.snapshot.count <= i < self.snapshot.count:
            raise IndexError(i)
        return Entry(self.snapshot, i % self.snapshot.count)

    def __iter__(self) -> Iterator[Entry]:
        snapshot = self.snapshot
        return (Entry(snapshot, i) for i in range(snapshot.count))


@dataclass(slots=True, eq=False)
class Index:
    base_dn: str
    count: int  # contacts; ids are 0..count-1 in display-name order
    original: list[Column | None]  # per attribute position; None where contacts never hold a value
    folded: list[Column | None]
    grams: dict[int, Grams]  # per number attribute (4-grams) and for cn/displayName/sn (3-grams)
    boxes: array[int]  # per id: the owner mailbox's number in `box_names`
    box_names: tuple[str, ...]
    base_values: tuple[tuple[str, ...], ...]  # the base entry's attributes, as served
    forms: NumberForms  # how the stored number digits expand to the forms they match as
    base_key: str = field(init=False)
    dn_suffix: str = field(init=False)  # what follows the uid in a contact's normalised DN (",ou=...")
    dn_tail: bytes = field(init=False)  # what follows the uid in a contact's DN as served
    mailboxes: frozenset[str] = field(init=False)
    base_folded: tuple[tuple[str, ...], ...] = field(init=False)
    sort_ranks: dict[int, array[int]] = field(default_factory=dict)  # per attribute, built on first use
    # Encoded SearchResultEntry ops per attribute selection and id, filled as entries are served.
    # Keyed by selection only (not message ID: clients count their IDs up), so a request just wraps the
    # cached op. Dropped wholesale past _OP_CACHE_BYTES.
    op_cache: dict[tuple[int, ...] | None, dict[int, bytes]] = field(default_factory=dict)
    op_cache_bytes: int = 0
    # Planned candidates per (filter, need) and the base entry's verdict per filter: phones repeat the
    # same few filters, and both are pure functions of the filter and this snapshot. Small answers only,
    # dropped wholesale when full (see plugin.ldap.search).
    plan_cache: dict[tuple[object, int], tuple[array[int], bool] | None] = field(default_factory=dict)
    base_verdicts: dict[object, bool | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_key = normalise_dn(self.base_dn)
        self.dn_suffix = normalise_dn(f"uid=x,{self.base_dn}")[len("uid=x"):]
        self.dn_tail = ("," + self.base_dn).encode()
        self.mailboxes = frozenset(self.box_names[b] for b in set(self.boxes))
        self.base_folded = tuple(tuple(fold(v) for v in values) for values in self.base_values)

    # Views made on each ask, not kept: an index holding objects that point back at it is a reference
    # cycle, freed only by the cyclic GC, and the servers' gc.freeze() after a rebuild would keep the
    # replaced index (tens of MB) forever. Acyclic, it goes as soon as the last session lets it go.
    @property
    def base(self) -> Entry:
        return Entry(self, -1)

    @property
    def entries(self) -> EntryList:
        return EntryList(self)

    # ---- values ---------------------------------------------------------------------------------

    def mailbox_of(self, eid: int) -> str:
        return "" if eid < 0 else self.box_names[self.boxes[eid]]

    def box_numbers(self, mailboxes: frozenset[str]) -> frozenset[int]:
        """The numbers of these mailboxes, for visibility checks without making entries."""
        return frozenset(n for n, name in enumerate(self.box_names) if name in mailboxes)

    def uid_of(self, eid: int) -> bytes:
        column = self.original[UID]
        assert column is not None
        return column.value(eid)

    def dn_of(self, eid: int) -> str:
        if eid < 0:
            return self.base_dn
        return (b"uid=" + self.uid_of(eid) + self.dn_tail).decode()

    def original_values(self, eid: int, pos: int) -> tuple[str, ...]:
        if eid < 0:
            return self.base_values[pos]
        if pos == OBJECT_CLASS:
            return PERSON_CLASSES
        column = self.original[pos]
        return _EMPTY if column is None else tuple(v.decode() for v in column.values(eid))

    def folded_values(self, eid: int, pos: int) -> tuple[str, ...]:
        if eid < 0:
            return self.base_folded[pos]
        if pos == OBJECT_CLASS:
            return _PERSON_FOLDED
        column = self.folded[pos]
        if column is None:
            return _EMPTY
        values = tuple(v.decode() for v in column.values(eid))
        return self.forms.expand(values) if pos in NUMBER_ATTRS else values

    def find(self, key: str) -> int | None:
        """The id of the contact whose normalised DN is `key` (see `normalise_dn`), if any. Every contact
        DN is `uid=<uid>,<base_dn>`, so the uid column's sorted order is the DN lookup."""
        suffix = self.dn_suffix
        if not key.startswith("uid=") or len(key) < len(suffix) + 4 or not key.endswith(suffix):
            return None
        column = self.folded[UID]
        if column is None:
            return None
        found = column.equal(key[4:len(key) - len(suffix)].encode())
        return found[0] if found else None

    # ---- answers --------------------------------------------------------------------------------

    def encode(self, eid: int, selection: tuple[int, ...] | None, types_only: bool = False) -> bytes:
        """The SearchResultEntry op for `eid` with the selected attributes (None: all of them)."""
        positions = ALL_POSITIONS if selection is None else selection
        if eid < 0:
            dn = encode_text(self.base_dn)
            attrs = [encode_attribute(NAMES[p], () if types_only else self.base_values[p])
                     for p in positions if self.base_values[p]]
        else:
            dn = encode_text(b"uid=" + self.uid_of(eid) + self.dn_tail)
            attrs = []
            original = self.original
            for pos in positions:
                if pos == OBJECT_CLASS:
                    attrs.append(encode_attribute(NAMES[pos], ()) if types_only else _PERSON_CLASSES_BER)
                    continue
                column = original[pos]
                values = column.values(eid) if column is not None else None
                if values:
                    attrs.append(encode_attribute(NAMES[pos], ()) if types_only else _attribute_ber(pos, values))
        body = b"".join(attrs)
        inner = b"\x30" + encode_length(len(body))
        return b"".join((_ENTRY_TAG, encode_length(len(dn) + len(inner) + len(body)), dn, inner, body))

    def entry_op(self, entry: Entry, selection: tuple[int, ...] | None) -> bytes:
        """`encode`, remembered for this snapshot's contacts."""
        eid = entry.eid
        if eid < 0 or entry.index is not self:  # the base entry, or one of an older snapshot
            return entry.index.encode(eid, selection)
        cache = self.op_cache.get(selection)
        if cache is None:
            if len(self.op_cache) >= _OP_CACHE_SELECTIONS:
                self._drop_ops()
            cache = self.op_cache[selection] = {}
        op = cache.get(eid)
        if op is None:
            op = cache[eid] = self.encode(eid, selection)
            self.op_cache_bytes += len(op)
            if self.op_cache_bytes > _OP_CACHE_BYTES:
                self._drop_ops()
        return op

    def _drop_ops(self) -> None:
        self.op_cache.clear()
        self.op_cache_bytes = 0

    def messages(self, entries: list[Entry], selection: tuple[int, ...] | None, prefix: bytes) -> list[bytes]:
        """The LDAPMessage pieces (header, message ID, op per entry) carrying `entries`, to be joined."""
        parts: list[bytes] = []
        append = parts.append
        id_size = len(prefix)
        cache = self.op_cache.get(selection)
        for entry in entries:
            op = cache.get(entry.eid) if cache is not None and entry.index is self else None
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
        op = self.entry_op(entry, selection)
        return message_header(len(prefix) + len(op)) + prefix + op

    # ---- ordering -------------------------------------------------------------------------------

    def rank(self, attr: int) -> array[int]:
        """Position of every entry when sorted by `attr` (server-side sort): by its first compared value,
        entries without one last."""
        ranks = self.sort_ranks.get(attr)
        if ranks is None:
            def first_value(i: int) -> tuple[bool, str]:
                values = self.folded_values(i, attr)
                return (False, values[0]) if values else (True, "")

            ranks = array("I", bytes(4 * self.count))
            for position, i in enumerate(sorted(range(self.count), key=first_value)):
                ranks[i] = position
            self.sort_ranks[attr] = ranks
        return ranks

    def nbytes(self) -> int:
        """The bytes held by the columns and lists (for the status page and the benchmarks)."""
        seen: set[int] = set()
        size = 0
        for column in (*self.original, *self.folded):
            if column is not None and id(column) not in seen:
                seen.add(id(column))
                size += column.nbytes()
        for grams in self.grams.values():
            if id(grams) not in seen:
                seen.add(id(grams))
                size += grams.nbytes()
        return size + len(self.boxes) * self.boxes.itemsize


def base_values(base_dn: str) -> tuple[tuple[str, ...], ...]:
    values: list[tuple[str, ...]] = [_EMPTY] * ATTR_COUNT
    values[OBJECT_CLASS] = BASE_CLASSES
    attr, _, value = base_dn.split(",", 1)[0].partition("=")
    if attr.strip().lower() == "ou":
        values[OU] = (value.strip(),)
    return tuple(values)
