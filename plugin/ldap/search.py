"""One search against one index snapshot: scope, filter, visibility, limits and sort. No IO.

`now` is injected (a monotonic clock) so time limits are testable without waiting. `search_steps` is the
search as a generator that yields at checkpoints (every few hundred entries, fewer for heavy filters),
so that the server can run it in slices and let FastAGI and AUTOCALL have the loop in between
(see docs/design.md, "Isolation on the LAN"); `run_search` runs it to the end in one go.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field

from pbxsync.plugin.ldap.filters import And, Filter, Not, Or
from pbxsync.plugin.ldap.index import Entry, Index, normalise_dn
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import ResultCode, Scope, SearchRequest, SortKey
from pbxsync.plugin.ldap.query import Candidates, compile_filter, evaluate, plan
from pbxsync.plugin.ldap.schema import attribute_index

_CHECK_EVERY = 64  # entries between checkpoints for a one-term filter; heavier filters check more often

Steps = Generator[None, None, "Outcome"]


@dataclass(slots=True)
class Outcome:
    entries: list[Entry] = field(default_factory=list)
    code: ResultCode = ResultCode.SUCCESS
    diagnostic: str = ""
    matched_dn: str = ""


@dataclass(frozen=True, slots=True)
class _Target:
    include_base: bool
    contacts: str | int | None  # "all", one entry id, or None


def _resolve(index: Index, base: str, scope: Scope, visible: frozenset[str] | None) -> _Target | Outcome:
    key = normalise_dn(base)
    if key in ("", index.base_key):  # an empty base (some phones) means the phonebook
        return _Target(scope != Scope.ONE, "all" if scope != Scope.BASE else None)
    entry_id = index.find(key)
    if entry_id is not None and (visible is None or index.entries[entry_id].mailbox in visible):
        return _Target(False, None if scope == Scope.ONE else entry_id)
    if key.endswith("," + index.base_key):  # unknown, or hidden from this bind: the same answer
        return Outcome(code=ResultCode.NO_SUCH_OBJECT, diagnostic="no such entry", matched_dn=index.base_dn)
    if index.base_key.endswith("," + key) and scope != Scope.BASE:
        # Searching from a parent such as dc=example,dc=com: the phonebook lies below it.
        direct_child = index.base_key[: -len(key) - 1].count(",") == 0
        if scope == Scope.SUB:
            return _Target(True, "all")
        return _Target(direct_child, None)
    return Outcome(code=ResultCode.NO_SUCH_OBJECT, diagnostic=f"the phonebook is at {index.base_dn}")


_CACHE_FILTERS = 1024  # distinct filters remembered per index snapshot
_CACHE_IDS = 512  # longest candidate list remembered (size-limited phone searches need a few dozen)


def _planned(index: Index, f: Filter, forms: NumberForms, need: int) -> tuple[Candidates, bool] | None:
    """`plan`, remembered per snapshot for small answers (lists are never mutated by the caller)."""
    key = (f, need)
    cache = index.plan_cache
    try:
        return cache[key]
    except KeyError:
        pass
    found = plan(f, index, forms, need)
    cached: tuple[array[int], bool] | None = None
    if found is not None:
        ids, exact = found
        if not isinstance(ids, list | array) or len(ids) > _CACHE_IDS:
            return found  # a lazy stream (used once) or a long list
        cached = (array("i", ids), exact)
    if len(cache) >= _CACHE_FILTERS:
        cache.clear()
    cache[key] = cached
    return cached


def _base_verdict(index: Index, f: Filter, forms: NumberForms) -> bool | None:
    verdicts = index.base_verdicts
    try:
        return verdicts[f]
    except KeyError:
        pass
    if len(verdicts) >= _CACHE_FILTERS:
        verdicts.clear()
    verdict = verdicts[f] = evaluate(f, index.base, forms)
    return verdict


def size_limit(requested: int, server_cap: int) -> int:
    """The effective limit, 0 meaning none."""
    limits = [n for n in (requested, server_cap) if n > 0]
    return min(limits) if limits else 0


def terms(f: Filter) -> int:
    """How many assertions a filter holds: what evaluating it on one entry costs, roughly."""
    if isinstance(f, And | Or):
        return sum(terms(c) for c in f.children) or 1
    if isinstance(f, Not):
        return terms(f.child)
    return 1


def run_search(index: Index, req: SearchRequest, visible: frozenset[str] | None, forms: NumberForms, *,
               size_cap: int, time_cap: float, now: Callable[[], float], collect_all: bool = False) -> Outcome:
    """Matching entries in display-name order. With `collect_all` (sort/paging) the size limit is
    applied by the caller after ordering, so every match is gathered."""
    steps = search_steps(index, req, visible, forms, size_cap=size_cap, time_cap=time_cap, now=now,
                         collect_all=collect_all)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome


def search_steps(index: Index, req: SearchRequest, visible: frozenset[str] | None, forms: NumberForms, *,
                 size_cap: int, time_cap: float, now: Callable[[], float], collect_all: bool = False) -> Steps:
    """`run_search` as a generator: it yields at checkpoints and returns the Outcome."""
    target = _resolve(index, req.base, req.scope, visible)
    if isinstance(target, Outcome):
        return target
    limit = size_limit(req.size_limit, size_cap)
    stop_after = 0 if collect_all or not limit else limit + 1
    time_budget = min(t for t in (float(req.time_limit or 0) or float("inf"), time_cap or float("inf")))
    deadline = now() + time_budget
    out = Outcome()
    found = out.entries
    if target.include_base and _base_verdict(index, req.filter, forms) is True:
        found.append(index.base)
    if isinstance(target.contacts, int):
        entry = index.entries[target.contacts]
        if (visible is None or entry.mailbox in visible) and evaluate(req.filter, entry, forms) is True:
            found.append(entry)
    elif target.contacts == "all":
        planned = _planned(index, req.filter, forms, stop_after if visible is None else 0)
        ids: Iterable[int] = range(index.count) if planned is None else planned[0]
        exact = planned is not None and planned[1]
        match = compile_filter(req.filter, forms) if not exact else None
        allowed = None if visible is None else index.box_numbers(visible)
        boxes = index.boxes
        check_every = _CHECK_EVERY if match is None else max(1, _CHECK_EVERY // terms(req.filter))
        checked = 0
        for i in ids:
            checked += 1
            if checked % check_every == 0:
                if now() > deadline:
                    out.code = ResultCode.TIME_LIMIT_EXCEEDED
                    out.diagnostic = "time limit exceeded"
                    return out
                yield
            if allowed is not None and boxes[i] not in allowed:
                continue
            entry = Entry(index, i)
            if match is None or match(entry) is True:
                found.append(entry)
                if len(found) == stop_after:
                    break
    if not collect_all:
        truncate(out, limit)
    return out


def truncate(out: Outcome, limit: int) -> None:
    if limit and len(out.entries) > limit:
        del out.entries[limit:]
        if out.code == ResultCode.SUCCESS:
            out.code = ResultCode.SIZE_LIMIT_EXCEEDED
            out.diagnostic = "size limit exceeded"


def sort_entries(index: Index, entries: list[Entry], keys: tuple[SortKey, ...]) -> tuple[int, str]:
    """Sort in place by the keys (RFC 2891); return (sortResult code, offending attribute)."""
    positions: list[tuple[int, bool]] = []
    for key in keys:
        pos = attribute_index(key.attr)
        if pos is None:
            return ResultCode.NO_SUCH_ATTRIBUTE, key.attr
        positions.append((pos, key.reverse))
    ranks = [(index.rank(pos), reverse) for pos, reverse in positions]

    def sort_key(e: Entry) -> tuple[int, ...]:
        i = e.eid
        if i < 0:  # the base entry sorts first
            return tuple(-1 for _ in ranks)
        return tuple(-r[i] if reverse else r[i] for r, reverse in ranks)

    entries.sort(key=sort_key)
    return ResultCode.SUCCESS, ""
