"""Column storage for the phonebook index: one attribute's values for every entry in a single buffer.

A phonebook of 100k contacts held as Python objects (a str per value, a tuple per attribute, an object
per entry) costs ~2.6 KB a contact. Here an attribute is one `bytes` buffer of UTF-8 values separated
by NUL plus two int arrays, ~5 bytes of overhead per value, and the same buffer serves substring scans
(`bytes.find` is a C loop over memory), equality and prefix lookups (bisection over a sorted order of
value numbers) and the values an entry is encoded from.

UTF-8 byte order is code point order, so bytes compare exactly as the folded str values would.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator

_SEP = b"\0"
_ABOVE_UTF8 = b"\xff"  # greater than every byte UTF-8 produces: closes a prefix range


def _compact(values: array[int]) -> array[int]:
    """A copy without the spare room appends leave (the arrays live as long as the index)."""
    return array(values.typecode, values)


class ColumnBuilder:
    """Collects one attribute's values entry by entry, in entry id order.

    Given the `previous` snapshot's column, it first only compares: while every value added so far is the
    one the previous column holds at that place, nothing is copied, and a column found identical to the
    previous one is that very object (`build`). A rebuild after a sync that changed a few contacts without
    moving them (a new number, a title) then holds only the columns that changed beside the old index,
    not a second copy of all of it. At the first difference the previous column's prefix is copied and the
    builder goes on appending as usual.
    """

    __slots__ = ("entries", "first", "previous", "starts", "text")

    def __init__(self, previous: Column | None = None) -> None:
        self.previous = previous  # still identical to the values added so far (None: appending)
        self.entries = 0  # entries added
        self.text = bytearray(_SEP)
        self.starts = array("I", [1])  # starts[k]: offset of value k; starts[-1]: one past the last separator
        self.first = array("I", [0])  # entry i holds values first[i]..first[i + 1] - 1

    def add(self, values: Iterable[bytes]) -> None:
        """The next entry's values (NUL-free, as the callers' `clean` guarantees)."""
        if self.previous is not None:
            values = list(values)
            if self._same(values):
                self.entries += 1
                return
            self._copy_previous()
        text, starts = self.text, self.starts
        for value in values:
            text += value
            text += _SEP
            starts.append(len(text))
        self.first.append(len(starts) - 1)
        self.entries += 1

    def _same(self, values: list[bytes]) -> bool:
        """Whether the previous column holds exactly `values` as the next entry's."""
        previous = self.previous
        assert previous is not None
        if self.entries >= previous.entry_count:
            return False
        lo, hi = previous.span(self.entries)
        if hi - lo != len(values):
            return False
        text, starts = previous.text, previous.starts
        for k, value in zip(range(lo, hi), values, strict=True):
            at = starts[k]
            if starts[k + 1] - 1 - at != len(value) or not text.startswith(value, at):
                return False
        return True

    def _copy_previous(self) -> None:
        """Switch to appending: what was found identical so far, copied from the previous column."""
        previous = self.previous
        assert previous is not None
        self.previous = None
        entries = self.entries
        values = previous.span(entries - 1)[1] if entries else 0
        self.text = bytearray(previous.text[:previous.starts[values]])
        self.starts = array("I", previous.starts[:values + 1])
        if previous.first is None:
            self.first = array("I", range(entries + 1))
        else:
            self.first = array("I", previous.first[:entries + 1])

    def build(self, sort: bool = False) -> Column:
        """The finished column (exactly sized), with a sorted order of its values for lookups when `sort`;
        the previous column itself when every entry matched it."""
        previous = self.previous
        if previous is not None:
            if self.entries == previous.entry_count:
                return previous  # built by the same role, so sorted if `sort` (see IndexBuilder)
            self._copy_previous()
        text = bytes(self.text)
        self.text = bytearray()
        starts, first = self.starts, self.first
        single = len(starts) == len(first) and all(first[i] == i for i in range(len(first)))
        column = Column(text, _compact(starts), None if single else _compact(first))
        if sort:
            column.sort_values()
        return column


class Column:
    """One attribute's values: `text` is NUL + each value + NUL, `starts[k]` where value k begins."""

    __slots__ = ("first", "order", "starts", "text")

    def __init__(self, text: bytes, starts: array[int], first: array[int] | None) -> None:
        self.text = text
        self.starts = starts
        self.first = first  # None: every entry holds exactly one value, value k belongs to entry k
        self.order: array[int] | None = None  # value numbers in value order; None: not sortable/identity

    # ---- values ---------------------------------------------------------------------------------

    @property
    def value_count(self) -> int:
        return len(self.starts) - 1

    @property
    def entry_count(self) -> int:
        return self.value_count if self.first is None else len(self.first) - 1

    def value(self, k: int) -> bytes:
        return self.text[self.starts[k]:self.starts[k + 1] - 1]

    def span(self, entry_id: int) -> tuple[int, int]:
        """Value numbers lo..hi-1 held by the entry."""
        first = self.first
        if first is None:
            return entry_id, entry_id + 1
        return first[entry_id], first[entry_id + 1]

    def values(self, entry_id: int) -> list[bytes]:
        lo, hi = self.span(entry_id)
        if lo == hi:
            return []
        starts, text = self.starts, self.text
        if hi - lo == 1:
            return [text[starts[lo]:starts[hi] - 1]]
        return text[starts[lo]:starts[hi] - 1].split(_SEP)

    def has(self, entry_id: int) -> bool:
        lo, hi = self.span(entry_id)
        return lo != hi

    def owner(self, k: int) -> int:
        """The entry holding value k."""
        first = self.first
        return k if first is None else bisect_right(first, k) - 1

    # ---- sorted lookups -------------------------------------------------------------------------

    def sort_values(self) -> None:
        """Order the value numbers by value. Bucketed by a 4-byte prefix, so only one bucket's values
        exist as objects at a time (build memory); already sorted columns keep no order (identity)."""
        count = self.value_count
        value = self.value
        if all(value(k) <= value(k + 1) for k in range(count - 1)):
            self.order = None
            return
        buckets: dict[bytes, array[int]] = {}
        text, starts = self.text, self.starts
        for k in range(count):
            start = starts[k]
            key = text[start:min(start + 4, starts[k + 1] - 1)]
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = array("I", [k])
            else:
                bucket.append(k)
        order = array("I")
        for key in sorted(buckets):
            bucket = buckets.pop(key)
            order.extend(sorted(bucket, key=value) if len(bucket) > 1 else bucket)
        self.order = order

    def _sorted_at(self, position: int) -> bytes:
        order = self.order
        return self.value(position if order is None else order[position])

    def _bisect(self, needle: bytes, lo: int = 0, right: bool = False) -> int:
        hi = self.value_count
        at = self._sorted_at
        while lo < hi:  # bisect over positions in sorted order, reading values out of the buffer
            mid = (lo + hi) // 2
            probe = at(mid)
            if probe < needle or (right and probe == needle):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def equal_range(self, value: bytes) -> tuple[int, int]:
        lo = self._bisect(value)
        return lo, self._bisect(value, lo, right=True)

    def prefix_range(self, prefix: bytes) -> tuple[int, int]:
        lo = self._bisect(prefix)
        return lo, self._bisect(prefix + _ABOVE_UTF8, lo)

    @property
    def ascending(self) -> bool:
        """Whether any sorted range is an ascending run of entry ids (the display-name column)."""
        return self.order is None and self.first is None

    def ids_in(self, lo: int, hi: int) -> list[int] | array[int]:
        """Ascending ids of the entries holding the values at sorted positions lo..hi-1."""
        if self.ascending:
            return array("I", range(lo, hi))
        order = self.order
        numbers: Iterable[int] = range(lo, hi) if order is None else order[lo:hi]
        owner = self.owner
        return sorted({owner(k) for k in numbers})

    def equal(self, value: bytes) -> list[int] | array[int]:
        return self.ids_in(*self.equal_range(value))

    # ---- substring scans ------------------------------------------------------------------------

    def scan(self, needle: bytes, anchor_start: bool, anchor_end: bool) -> Iterator[int]:
        """Ids of entries with a value containing `needle` (at its start/end if anchored), ascending."""
        if not self.value_count or _SEP in needle:  # values hold no NUL: it would match across two values
            return
        pattern = (_SEP if anchor_start else b"") + needle + (_SEP if anchor_end else b"")
        shift = 1 if anchor_start else 0
        text, starts = self.text, self.starts
        find, owner = text.find, self.owner
        pos = 0
        previous = -1
        while True:
            hit = find(pattern, pos)
            if hit < 0:
                return
            k = bisect_right(starts, hit + shift) - 1  # >= 0: the text starts with a separator
            entry_id = owner(k)
            if entry_id != previous:
                previous = entry_id
                yield entry_id
            pos = starts[k + 1] - 1  # the separator closing value k

    def first_matches(self, needle: bytes, anchor_start: bool, anchor_end: bool, limit: int) -> list[int]:
        """The first `limit` ids `scan` would yield."""
        found: list[int] = []
        for entry_id in self.scan(needle, anchor_start, anchor_end):
            found.append(entry_id)
            if len(found) >= limit:
                break
        return found

    def nbytes(self) -> int:
        size = len(self.text) + self.starts.itemsize * len(self.starts)
        for extra in (self.first, self.order):
            if extra is not None:
                size += extra.itemsize * len(extra)
        return size


class Grams:
    """n-gram (of UTF-8 bytes) -> ascending entry ids: `*4711*` reads one short list, `*mill*`
    intersects two instead of scanning every name. Lists longer than `cap` are never read (a column
    scan finds matches of a frequent fragment sooner), so only their length is kept (memory)."""

    __slots__ = ("cap", "dropped", "n", "postings")

    def __init__(self, n: int, cap: int) -> None:
        self.n = n
        self.cap = cap
        self.postings: dict[bytes, array[int]] = {}
        self.dropped: dict[bytes, int] = {}

    def add(self, entry_id: int, values: Iterable[bytes]) -> None:
        n = self.n
        grams: set[bytes] = set()
        for value in values:
            grams.update(value[j:j + n] for j in range(len(value) - n + 1))
        postings, dropped, cap = self.postings, self.dropped, self.cap
        for gram in grams:
            ids = postings.get(gram)
            if ids is not None:
                ids.append(entry_id)
                if len(ids) > cap:
                    dropped[gram] = len(ids)
                    del postings[gram]
            elif gram in dropped:
                dropped[gram] += 1
            else:
                postings[gram] = array("I", [entry_id])

    def finish(self) -> Grams:
        for gram, ids in self.postings.items():
            self.postings[gram] = _compact(ids)
        return self

    def count(self, gram: bytes) -> int:
        ids = self.postings.get(gram)
        return len(ids) if ids is not None else self.dropped.get(gram, 0)

    def rarest(self, needle: bytes) -> int:
        """How many entries hold the needle's rarest n-gram (0 if one is absent)."""
        n = self.n
        return min(self.count(needle[j:j + n]) for j in range(len(needle) - n + 1))

    def lookup(self, needle: bytes) -> list[int] | array[int] | None:
        """Ascending ids of entries with a value containing `needle` (len >= n): exact when the needle is
        one gram long, else a superset (the two rarest kept lists intersected). None when every gram of
        the needle is too frequent to have a list (see `rarest`)."""
        n = self.n
        lists: list[array[int]] = []
        for j in range(len(needle) - n + 1):
            gram = needle[j:j + n]
            ids = self.postings.get(gram)
            if ids is None:
                if gram not in self.dropped:
                    return []
                continue
            lists.append(ids)
        if not lists:
            return None
        lists.sort(key=len)
        if len(lists) == 1:
            return lists[0]
        return sorted(set(lists[0]).intersection(lists[1]))

    def nbytes(self) -> int:
        return sum(4 * len(ids) for ids in self.postings.values())
