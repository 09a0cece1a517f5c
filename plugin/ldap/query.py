"""Filters against the index: a compiled matcher per filter and a planner that picks candidates.

Matching follows RFC 4511 three-valued logic (True / False / None = Undefined): an unknown attribute is
Undefined, and `!` of Undefined stays Undefined, so `(!(foo=x))` matches nothing rather than everything.
Names compare case-insensitively with insignificant spaces ignored; numbers compare by their digit forms
(see plugin.ldap.numbers), so formatting never matters.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TypeAlias

from pbxsync.plugin.ldap.columns import Column
from pbxsync.plugin.ldap.filters import (
    And,
    Approx,
    Equality,
    Extensible,
    Filter,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Present,
    Substrings,
)
from pbxsync.plugin.ldap.index import Entry, Index
from pbxsync.plugin.ldap.numbers import NumberForms, only_digits
from pbxsync.plugin.ldap.schema import (
    NUMBER_ATTRS,
    OBJECT_CLASS,
    approx_key,
    attribute_index,
    fold,
    fold_fragment,
    has_control,
)

Matcher = Callable[[Entry], bool | None]

# A prefix range / rarest n-gram list longer than this streams from a column scan instead.
MAX_LIST_IDS = 4000  # also the longest n-gram list an index keeps (plugin.ldap.build)
# An OR whose children's candidate lists hold at most this many ids is unioned eagerly.
_MAX_UNION = 20000

Candidates: TypeAlias = "Iterator[int] | list[int] | array[int]"


def _undefined(_entry: Entry) -> bool | None:
    return None


def _false(_entry: Entry) -> bool | None:
    return False


def _true(_entry: Entry) -> bool | None:
    return True


def substring_match(value: str, initial: str, anys: tuple[str, ...], final: str) -> bool:
    if not value.startswith(initial):
        return False
    pos = len(initial)
    end = len(value)
    if final:
        if end - pos < len(final) or not value.endswith(final):
            return False
        end -= len(final)
    for part in anys:
        hit = value.find(part, pos, end)
        if hit < 0:
            return False
        pos = hit + len(part)
    return True


class SubstringPlan:
    """A substrings assertion reduced to the attribute's comparison form."""

    __slots__ = ("anys", "final", "initial")

    def __init__(self, f: Substrings, number: bool) -> None:
        norm: Callable[[str], str] = only_digits if number else fold_fragment
        self.initial = norm(f.initial) if f.initial else ""
        self.anys = tuple(p for p in (norm(a) for a in f.any) if p)
        self.final = norm(f.final) if f.final else ""

    def longest(self) -> tuple[str, bool, bool]:
        """The most selective piece to scan a column for: (needle, anchored at start, at end)."""
        best = (self.initial, True, False)
        for part in self.anys:
            if len(part) > len(best[0]):
                best = (part, False, False)
        if len(self.final) > len(best[0]):
            best = (self.final, False, True)
        return best


def evaluate(f: Filter, entry: Entry, forms: NumberForms) -> bool | None:
    """`f` on one entry without compiling the whole filter: leaves on attributes the entry lacks are
    False at once (used for the base entry, which has almost no attributes)."""
    if isinstance(f, And):
        result: bool | None = True
        for child in f.children:
            r = evaluate(child, entry, forms)
            if r is False:
                return False
            if r is None:
                result = None
        return result
    if isinstance(f, Or):
        result = False
        for child in f.children:
            r = evaluate(child, entry, forms)
            if r is True:
                return True
            if r is None:
                result = None
        return result
    if isinstance(f, Not):
        r = evaluate(f.child, entry, forms)
        return None if r is None else not r
    if not isinstance(f, Extensible):
        pos = attribute_index(f.attr)
        if pos is not None and pos != OBJECT_CLASS and not entry.folded(pos):
            return False
    return compile_filter(f, forms)(entry)


@lru_cache(maxsize=1024)
def substring_plan(f: Substrings, number: bool) -> SubstringPlan:
    return SubstringPlan(f, number)


@lru_cache(maxsize=1024)
def compile_filter(f: Filter, forms: NumberForms) -> Matcher:
    """A matcher for `f` (cached: phones repeat their filters, and filters are immutable values)."""
    return _compile(f, forms)


def _compile(f: Filter, forms: NumberForms) -> Matcher:
    if isinstance(f, And):
        parts = [_compile(c, forms) for c in f.children]

        def match_and(e: Entry) -> bool | None:
            result: bool | None = True
            for part in parts:
                r = part(e)
                if r is False:
                    return False
                if r is None:
                    result = None
            return result
        return match_and
    if isinstance(f, Or):
        parts = [_compile(c, forms) for c in f.children]

        def match_or(e: Entry) -> bool | None:
            result: bool | None = False
            for part in parts:
                r = part(e)
                if r is True:
                    return True
                if r is None:
                    result = None
            return result
        return match_or
    if isinstance(f, Not):
        inner = _compile(f.child, forms)

        def match_not(e: Entry) -> bool | None:
            r = inner(e)
            return None if r is None else not r
        return match_not
    if isinstance(f, Extensible):
        return _undefined
    pos = attribute_index(f.attr)
    if pos is None:
        return _false if isinstance(f, Present) else _undefined
    if isinstance(f, Present):
        if pos == OBJECT_CLASS:
            return _true
        return lambda e: bool(e.folded(pos))
    number = pos in NUMBER_ATTRS
    if isinstance(f, Equality):
        if number:
            wanted = forms.assertion_forms(f.value)
            return lambda e: any(v in wanted for v in e.folded(pos))
        target = fold(f.value)
        return lambda e: target in e.folded(pos)
    if isinstance(f, Substrings):
        plan = substring_plan(f, number)
        ini, anys, fin = plan.initial, plan.anys, plan.final
        # The shapes phones send, without the general loop: "x*", "*x*", "*x".
        if not anys and not fin:
            return lambda e: any(v.startswith(ini) for v in e.folded(pos))
        if not ini and not fin and len(anys) == 1:
            (part,) = anys
            return lambda e: any(part in v for v in e.folded(pos))
        if not ini and not anys:
            return lambda e: any(v.endswith(fin) for v in e.folded(pos))
        return lambda e: any(substring_match(v, ini, anys, fin) for v in e.folded(pos))
    if isinstance(f, GreaterOrEqual | LessOrEqual):
        bound = only_digits(f.value) if number else fold(f.value)
        if isinstance(f, GreaterOrEqual):
            return lambda e: any(v >= bound for v in e.folded(pos))
        return lambda e: any(v <= bound for v in e.folded(pos))
    # Approx
    assert isinstance(f, Approx)
    if number:
        wanted = forms.assertion_forms(f.value)
        return lambda e: any(v in wanted for v in e.folded(pos))
    key = approx_key(f.value)

    def match_approx(e: Entry) -> bool | None:
        for v in e.folded(pos):
            folded = approx_key(v)
            if folded == key or any(w.startswith(key) for w in folded.split()):
                return True
        return False
    return match_approx


def _dedupe(ids: Iterator[int]) -> Iterator[int]:
    previous = -1
    for i in ids:
        if i != previous:
            previous = i
            yield i


def candidates(f: Filter, index: Index, forms: NumberForms) -> Candidates | None:
    """Ascending entry ids that may match (a superset), or None when only a full scan will do."""
    found = plan(f, index, forms)
    return None if found is None else found[0]


def plan(f: Filter, index: Index, forms: NumberForms, need: int = 0) -> tuple[Candidates, bool] | None:
    """Candidate ids in ascending order and whether they are exactly the matches (then the caller need
    not evaluate the filter on each), or None when only a full scan will do. Small answers come back as
    lists/arrays (so an OR can union them in C), large ones as lazy iterators.

    `need` > 0 says the caller stops after that many matches and every candidate it gets counts: an
    exact stream may then be cut to its first `need` ids (an OR's first `need` matches are always among
    its exact children's first `need`)."""
    if isinstance(f, And):
        best: tuple[Candidates, bool] | None = None
        for child in f.children:  # drive with the shortest known list, else the first usable stream
            found = plan(child, index, forms)  # no `need`: the other children may reject candidates
            if found is None:
                continue
            if best is None or (isinstance(found[0], list | array)
                                and (not isinstance(best[0], list | array) or len(found[0]) < len(best[0]))):
                best = found
        if best is None:
            return None
        return best[0], best[1] and len(f.children) == 1
    if isinstance(f, Or):
        streams = [plan(child, index, forms, need) for child in f.children]
        if not streams:
            return None
        usable = [s for s in streams if s is not None]
        if len(usable) != len(streams):
            return None
        exact = all(e for _, e in usable)
        sized = [c for c, _ in usable if isinstance(c, list | array)]
        if need and exact:  # an exact OR's first `need` matches are among each child's first `need`
            sized = [c[:need] for c in sized]
        if len(sized) == len(usable) and sum(len(c) for c in sized) <= _MAX_UNION:
            return sorted(set().union(*sized)), exact
        return _dedupe(heapq.merge(*(iter(c) for c, _ in usable))), exact
    if isinstance(f, Equality | Substrings):
        pos = attribute_index(f.attr)
        if pos is None:
            return [], True  # Undefined for every entry
        if pos == OBJECT_CLASS:
            return None
        column = index.folded[pos]
        if column is None:
            return [], True  # no contact holds this attribute
        if pos in NUMBER_ATTRS:  # compared as digits only
            return _plan_number(f, pos, column, index, forms, need)
        if _control_character(f):
            return [], True  # stored values are cleaned of control characters: none can match
        if isinstance(f, Equality):
            return column.equal(fold(f.value).encode()), True
        sub = substring_plan(f, False)
        text, at_start, at_end = sub.longest()
        if not text:
            return None
        needle = text.encode()
        one_piece = (bool(sub.initial) + len(sub.anys) + bool(sub.final)) == 1
        list_limit = _list_limit(index, need)
        if at_start:
            lo, hi = column.prefix_range(needle)
            if column.ascending:
                return column.ids_in(lo, min(hi, lo + need) if need and one_piece else hi), one_piece
            if hi - lo <= list_limit:
                return column.ids_in(lo, hi), one_piece
            # else: a frequent prefix, spread over the ids: the column scan finds enough at once
        else:
            grams = index.grams.get(pos)
            if grams is not None and len(needle) >= grams.n and grams.rarest(needle) <= list_limit:
                hits = grams.lookup(needle)
                if hits is not None:
                    return hits, one_piece and not at_end and len(needle) == grams.n
            # else: a frequent fragment: the column scan finds enough at once
        if need and one_piece:
            return column.first_matches(needle, at_start, at_end, need), True
        return column.scan(needle, at_start, at_end), one_piece
    if isinstance(f, Present):
        pos = attribute_index(f.attr)
        return ([], True) if pos is None else None
    if isinstance(f, GreaterOrEqual | LessOrEqual):
        covered = range_positions(f, index)
        if covered is None:
            return None
        column, lo, hi = covered
        if column is None:
            return [], True  # no contact holds this attribute
        if hi - lo > MAX_LIST_IDS:
            return None  # a wide range: scanning every entry is cheaper than sorting its owners
        return column.ids_in(lo, hi), True
    return None


def range_positions(f: GreaterOrEqual | LessOrEqual, index: Index) -> tuple[Column | None, int, int] | None:
    """The sorted value positions a `>=`/`<=` on a name attribute covers (bisected, no scan), or None
    when the attribute is a number (compared as digit forms) or objectClass."""
    pos = attribute_index(f.attr)
    if pos is None or pos == OBJECT_CLASS or pos in NUMBER_ATTRS:
        return None
    column = index.folded[pos]
    if column is None:
        return None, 0, 0
    bound = fold(f.value).encode()
    if isinstance(f, GreaterOrEqual):
        return column, column.equal_range(bound)[0], column.value_count
    return column, 0, column.equal_range(bound)[1]


def _control_character(f: Equality | Substrings) -> bool:
    pieces = [f.value] if isinstance(f, Equality) else [f.initial or "", *f.any, f.final or ""]
    return any(has_control(p) for p in pieces)


def _list_limit(index: Index, need: int) -> int:
    """Lists cost about their length to build; a column scan about need x entries / matches values (it
    stops early). With a `need`, lists pay off up to ~sqrt(6 x entries) ids; without, always."""
    return min(MAX_LIST_IDS, max(64, int((6 * index.count) ** 0.5))) if need else MAX_LIST_IDS


def _union(parts: list[Candidates]) -> Candidates:
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, list | array) for p in parts):
        return sorted(set().union(*parts))
    return _dedupe(heapq.merge(*(iter(p) for p in parts)))


def _plan_number(f: Equality | Substrings, pos: int, column: Column, index: Index, forms: NumberForms,
                 need: int) -> tuple[Candidates, bool] | None:
    """Candidates for a number assertion. The column holds what the forms derive from (see
    NumberForms.stored), so a form is found through the stored values it comes from."""
    if isinstance(f, Equality):
        keys = {key for form in forms.assertion_forms(f.value) for key in forms.stored_keys(form)}
        return _union([column.equal(key.encode()) for key in sorted(keys)]), True
    sub = substring_plan(f, True)
    text = sub.longest()[0]
    if not text:
        return None
    needle = text.encode()
    # Occurrences of the fragment in the stored digits (every form but where it starts inside a
    # 00/0 prefix), then the numbers whose derived forms have it across that prefix.
    exact = (len(sub.anys) == 1 and not sub.initial and not sub.final)
    grams = index.grams.get(pos)
    parts: list[Candidates] = []
    if grams is not None and len(needle) >= grams.n and grams.rarest(needle) <= _list_limit(index, need):
        hits = grams.lookup(needle)
        if hits is not None:
            parts.append(hits)
            exact = exact and len(needle) == grams.n
    if not parts:
        parts.append(column.scan(needle, False, False))
    parts += [column.ids_in(*column.prefix_range(p.encode())) for p in sorted(forms.overlap_prefixes(text))]
    return _union(parts), exact
