"""What a search would cost, estimated before it runs, so that absurd filters are refused at once.

The expensive part of a search is evaluating the filter in Python on every candidate entry; its cost is
about (candidates the planner would visit) x (assertions in the filter). The estimate reads only sorted
positions and n-gram counts (bisections, no lists built), so refusing costs microseconds. Refusals:
- more assertions than `[ldap] max_filter_terms`, or nested deeper than `MAX_DEPTH`: adminLimitExceeded (11);
- an estimated cost above `[ldap] max_search_cost` (e.g. an OR of 40 unindexed `~=` terms over 100k
  contacts): unwillingToPerform (53).
Phones send a handful of indexed assertions; both limits leave them far below.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbxsync.plugin.ldap.filters import (
    And,
    Equality,
    Filter,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Substrings,
)
from pbxsync.plugin.ldap.index import Index
from pbxsync.plugin.ldap.protocol import ResultCode
from pbxsync.plugin.ldap.query import range_positions, substring_plan
from pbxsync.plugin.ldap.schema import NUMBER_ATTRS, OBJECT_CLASS, attribute_index, fold
from pbxsync.plugin.ldap.search import terms

MAX_DEPTH = 8  # phones nest two levels; the decoder's own cap (32) is for well-formedness


@dataclass(frozen=True, slots=True)
class Refusal:
    code: ResultCode
    diagnostic: str


def depth(f: Filter) -> int:
    if isinstance(f, And | Or):
        return 1 + max((depth(c) for c in f.children), default=0)
    if isinstance(f, Not):
        return 1 + depth(f.child)
    return 1


def candidates_estimate(f: Filter, index: Index) -> int:
    """An upper bound (roughly) on the entries the planner visits for `f`."""
    everyone = index.count
    if isinstance(f, And):
        return min((candidates_estimate(c, index) for c in f.children), default=everyone)
    if isinstance(f, Or):
        return min(everyone, sum(candidates_estimate(c, index) for c in f.children))
    if isinstance(f, GreaterOrEqual | LessOrEqual):
        covered = range_positions(f, index)
        return everyone if covered is None else min(everyone, covered[2] - covered[1])
    if isinstance(f, Equality | Substrings):
        pos = attribute_index(f.attr)
        if pos is None:
            return 0
        column = index.folded[pos]
        if pos == OBJECT_CLASS:
            return everyone
        if column is None:
            return 0
        number = pos in NUMBER_ATTRS
        if isinstance(f, Equality):
            if number:
                return 16  # a handful of stored keys per dialled form
            lo, hi = column.equal_range(fold(f.value).encode())
            return hi - lo
        text, at_start, _ = substring_plan(f, number).longest()
        if at_start and text and not number:
            lo, hi = column.prefix_range(text.encode())
            return min(everyone, hi - lo)
        grams = index.grams.get(pos)
        if grams is not None and len(text.encode()) >= grams.n:
            return min(everyone, grams.rarest(text.encode()))
        return everyone // 8  # a column scan in C finds the candidates; only they are evaluated
    return everyone  # presence, negation, approximate and extensible matches visit every entry


def refusal(f: Filter, index: Index, max_terms: int, max_cost: int) -> Refusal | None:
    """Why this filter is not run, or None when it may be."""
    count = terms(f)
    if max_terms and count > max_terms:
        return Refusal(ResultCode.ADMIN_LIMIT_EXCEEDED, f"filter has {count} assertions; at most {max_terms}")
    if depth(f) > MAX_DEPTH:
        return Refusal(ResultCode.ADMIN_LIMIT_EXCEEDED, f"filter nested deeper than {MAX_DEPTH}")
    if max_cost and candidates_estimate(f, index) * count > max_cost:
        return Refusal(ResultCode.UNWILLING_TO_PERFORM, "filter too costly: use indexed assertions (=, x*, *x*)")
    return None
