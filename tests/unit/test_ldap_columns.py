"""The column store under the LDAP index, and building an index straight from the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsync.plugin.daemon.memory import return_large_frees_to_os
from pbxsync.plugin.ldap.build import ContactRow, PhoneRow, build_from_store, build_index, read_contacts
from pbxsync.plugin.ldap.columns import Column, ColumnBuilder, Grams
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.schema import CN, MOBILE, NAMES, TELEPHONE
from tests.support.ldap_phonebook import BASE_DN, make_store
from tests.support.sample_contacts import generate

FORMS = NumberForms("DE")


def column_of(entries: list[list[bytes]], sort: bool = True) -> Column:
    builder = ColumnBuilder()
    for values in entries:
        builder.add(values)
    return builder.build(sort=sort)


VALUES = st.lists(st.lists(st.text("abcü0 ", max_size=6).map(str.encode), max_size=3), max_size=30)


@settings(max_examples=200, deadline=None)
@given(VALUES, st.text("abcü0", min_size=1, max_size=3).map(str.encode))
def test_lookups_agree_with_a_plain_loop(entries: list[list[bytes]], needle: bytes) -> None:
    column = column_of(entries)
    for eid, values in enumerate(entries):
        assert column.values(eid) == values
        assert column.has(eid) == bool(values)
    assert list(column.scan(needle, False, False)) == [i for i, vs in enumerate(entries) if any(needle in v
                                                                                               for v in vs)]
    assert list(column.scan(needle, True, False)) == [i for i, vs in enumerate(entries)
                                                      if any(v.startswith(needle) for v in vs)]
    assert list(column.scan(needle, False, True)) == [i for i, vs in enumerate(entries)
                                                      if any(v.endswith(needle) for v in vs)]
    assert column.first_matches(needle, False, False, 2) == list(column.scan(needle, False, False))[:2]
    assert list(column.equal(needle)) == [i for i, vs in enumerate(entries) if needle in vs]
    lo, hi = column.prefix_range(needle)
    assert list(column.ids_in(lo, hi)) == [i for i, vs in enumerate(entries) if any(v.startswith(needle)
                                                                                     for v in vs)]


def test_single_valued_sorted_column_keeps_no_extra_arrays() -> None:
    column = column_of([[b"anna"], [b"bernd"], [b"carl"]])
    assert column.first is None and column.order is None and column.ascending
    assert list(column.ids_in(*column.prefix_range(b"b"))) == [1]
    unsorted = column_of([[b"carl"], [b"anna"], [b""], [b"anna"]])
    assert unsorted.order is not None and not unsorted.ascending
    assert list(unsorted.equal(b"anna")) == [1, 3]
    assert list(unsorted.equal(b"")) == [2]


def test_bucketed_sort_orders_values_longer_and_shorter_than_the_bucket_key() -> None:
    words = [b"abcdz", b"abc", b"abcd", b"abcda", b"b", b"", b"abcdaa", "äb".encode()]
    column = column_of([[w] for w in words])
    assert [column.value(k) for k in (column.order or range(len(words)))] == sorted(words)


def test_grams_keep_counts_only_for_lists_past_the_cap() -> None:
    grams = Grams(3, cap=2)
    for eid, value in enumerate([b"muller", b"miller", b"mullins", b"smith"]):
        grams.add(eid, [value])
    assert b"ull" in grams.postings and b"ler" in grams.postings
    grams.add(4, [b"mull"])
    assert b"mul" not in grams.postings and grams.count(b"mul") == 3 and grams.rarest(b"mull") == 3
    assert list(grams.lookup(b"ller") or []) == [0, 1]
    assert grams.lookup(b"mul") is None  # only a count is left: the caller scans the column instead
    assert grams.lookup(b"xyz") == []


async def test_store_build_matches_the_in_memory_build(tmp_path: Path) -> None:
    contacts = generate(300, seed=5, mailboxes=("a@example.com", "b@example.com"))
    db = await make_store(tmp_path / "pb.db", contacts)
    conn = sqlite3.connect(db, isolation_level=None)
    from_store = build_from_store(conn, BASE_DN, FORMS)
    from_rows = build_index(read_contacts(conn), BASE_DN, FORMS)
    assert from_store.count == from_rows.count == 300
    names = [e.folded(CN)[0] for e in from_store.entries]
    assert names == sorted(names)
    for a, b in zip(from_store.entries, from_rows.entries, strict=True):
        assert a.dn == b.dn and a.mailbox == b.mailbox
        for pos in range(len(NAMES)):
            assert a.original(pos) == b.original(pos) and a.folded(pos) == b.folded(pos)
        assert from_store.encode(a.eid, None) == from_rows.encode(b.eid, None)
    by_dn = {e.dn: e for e in from_store.entries}
    for c in contacts[:50]:  # every phone arrives with its own contact, in stored order
        entry = next(e for e in by_dn.values() if e.original(CN) == (c.display_name,)
                     and all(raw in e.original(TELEPHONE) + e.original(MOBILE) + e.original(NAMES.index("homePhone"))
                             for _, raw in c.phones))
        assert entry.mailbox == c.mailbox


def test_hostile_values_are_served_cleaned_and_never_break_the_separators() -> None:
    rows = [(ContactRow("a@x", "1", "Evil\0Name\r\nX", "", "", "ACME\x00", "", '["a@x\\u0000y"]'),
             [PhoneRow("business", "+49 30\0 1234", None, "49301234")])]
    index = build_index(rows, BASE_DN, FORMS)
    (entry,) = index.entries
    assert entry.original(CN) == ("EvilName\nX",)  # control characters but line breaks dropped
    assert entry.original(TELEPHONE) == ("+49 30 1234",)
    assert all("\0" not in v for pos in range(len(NAMES)) for v in entry.original(pos) + entry.folded(pos))


def test_the_daemon_fixes_the_malloc_threshold() -> None:
    assert return_large_frees_to_os() is True  # glibc: Debian, the only platform we ship for


async def test_store_build_with_a_non_ascii_capital_in_the_mailbox(tmp_path: Path) -> None:
    """SQLite's lower() knows ASCII only: the order key must lower-case the mailbox as Python does."""
    contacts = [c.__class__(**{**c.__dict__, "display_name": "Same Name"})
                for c in generate(20, seed=2, mailboxes=("Ärzte@x.de",))]
    db = await make_store(tmp_path / "pb.db", contacts)
    index = build_from_store(sqlite3.connect(db, isolation_level=None), BASE_DN, FORMS)
    assert index.count == 20 and index.mailboxes == frozenset({"ärzte@x.de"})


def test_a_nul_in_a_fragment_never_matches_across_values() -> None:
    column = column_of([[b"xa"], [b"b"]])
    assert list(column.scan(b"\0", False, False)) == [] and list(column.scan(b"a\0b", False, False)) == []


def _same_column(a: Column, b: Column) -> bool:
    return (a.text, a.starts, a.first, a.order) == (b.text, b.starts, b.first, b.order)


@settings(max_examples=300, deadline=None)
@given(VALUES, VALUES, st.booleans())
def test_a_column_built_beside_the_previous_one_is_the_column_built_afresh(
        before: list[list[bytes]], after: list[list[bytes]], sort: bool) -> None:
    previous = column_of(before, sort)
    builder = ColumnBuilder(previous)
    for values in after:
        builder.add(iter(values))  # a generator, as IndexBuilder passes them
    column = builder.build(sort)
    assert _same_column(column, column_of(after, sort))
    assert (column is previous) == (before == after)  # identical values: the previous column itself


@settings(max_examples=100, deadline=None)
@given(VALUES, st.integers(0, 29), st.lists(st.text("abc", max_size=4).map(str.encode), max_size=2))
def test_a_column_differing_in_one_entry_is_the_column_built_afresh(
        entries: list[list[bytes]], at: int, replacement: list[bytes]) -> None:
    changed = [list(v) for v in entries]
    if entries:
        changed[at % len(entries)] = replacement
    builder = ColumnBuilder(column_of(entries))
    for values in changed:
        builder.add(values)
    assert _same_column(builder.build(sort=True), column_of(changed))


async def test_a_rebuild_shares_the_columns_a_sync_left_unchanged(tmp_path: Path) -> None:
    """A new number for one contact: only the number's columns (and n-grams) are built again; the index
    is the one a fresh build makes, and the old one still answers as before."""
    contacts = generate(200, seed=9, mailboxes=("a@example.com", "b@example.com"))
    db = await make_store(tmp_path / "pb.db", contacts)
    conn = sqlite3.connect(db, isolation_level=None)
    old = build_from_store(conn, BASE_DN, FORMS)
    old_ops = [old.encode(e, None) for e in range(old.count)]
    contact_id = conn.execute("SELECT contact_id FROM contact_phones WHERE kind = 'business' LIMIT 1").fetchone()[0]
    conn.execute("UPDATE contact_phones SET raw = '+49 30 99887766', e164 = '+493099887766', "
                 "digits = '493099887766' WHERE contact_id = ? AND kind = 'business'", (contact_id,))
    new = build_from_store(conn, BASE_DN, FORMS, old)
    fresh = build_from_store(conn, BASE_DN, FORMS)
    for pos in range(len(NAMES)):
        for a, b, o in ((new.original[pos], fresh.original[pos], old.original[pos]),
                        (new.folded[pos], fresh.folded[pos], old.folded[pos])):
            assert (a is None and b is None) or (a is not None and b is not None and _same_column(a, b))
            assert (a is o) == (pos != TELEPHONE)
    assert new.grams[CN] is old.grams[CN] and new.grams[TELEPHONE] is not old.grams[TELEPHONE]
    assert new.grams[TELEPHONE].postings == fresh.grams[TELEPHONE].postings
    assert [new.encode(e, None) for e in range(new.count)] == [fresh.encode(e, None) for e in range(fresh.count)]
    assert [old.encode(e, None) for e in range(old.count)] == old_ops


async def test_a_rebuild_after_a_contact_moved_builds_every_column_again(tmp_path: Path) -> None:
    """A rename that moves a contact shifts every entry after it: nothing is shared, and the index is
    still the one a fresh build makes."""
    contacts = generate(100, seed=3, mailboxes=("a@example.com",))
    db = await make_store(tmp_path / "pb.db", contacts)
    conn = sqlite3.connect(db, isolation_level=None)
    old = build_from_store(conn, BASE_DN, FORMS)
    conn.execute("UPDATE contacts SET display_name = 'Aaaa First' WHERE id = (SELECT max(id) FROM contacts)")
    new = build_from_store(conn, BASE_DN, FORMS, old)
    fresh = build_from_store(conn, BASE_DN, FORMS)
    assert new.original[CN] is not old.original[CN]
    assert [new.encode(e, None) for e in range(new.count)] == [fresh.encode(e, None) for e in range(fresh.count)]
    assert [new.folded_values(e, TELEPHONE) for e in range(new.count)] == [
        fresh.folded_values(e, TELEPHONE) for e in range(fresh.count)]
