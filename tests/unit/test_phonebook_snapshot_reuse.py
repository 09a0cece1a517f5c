"""A re-read of the store shares every entry a sync left unchanged with the snapshot still serving, and
gives exactly the snapshot a fresh read gives (plugin.phonebook.book `read_snapshot`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.phonebook.book import Snapshot, read_snapshot
from pbxsync.plugin.phonebook.entries import Dialer
from tests.support.ldap_phonebook import make_store
from tests.support.sample_contacts import generate

DIALER = Dialer(NumberForms("DE"), "national", "0")


def same(a: Snapshot, b: Snapshot) -> bool:
    return (a.everything, a.by_mailbox, a.digests) == (b.everything, b.by_mailbox, b.digests)


async def test_a_re_read_shares_the_unchanged_entries_and_equals_a_fresh_read(tmp_path: Path) -> None:
    db = await make_store(tmp_path / "pb.db", generate(120, seed=4, mailboxes=("a@example.com", "b@example.com")))
    conn = sqlite3.connect(db, isolation_level=None)
    old = read_snapshot(conn, DIALER)
    kept = old.everything
    conn.execute("UPDATE contacts SET company = 'Changed GmbH' WHERE id % 10 = 0")
    new = read_snapshot(conn, DIALER, old)
    assert same(new, read_snapshot(conn, DIALER))
    shared = sum(a is b for a, b in zip(new.everything, old.everything, strict=True))
    changed = sum(a != b for a, b in zip(new.everything, old.everything, strict=True))
    assert changed > 0 and shared == len(new.everything) - changed  # every unchanged entry is the old string
    assert old.everything == kept  # the serving snapshot is left as it was


async def test_a_re_read_after_contacts_came_and_went_equals_a_fresh_read(tmp_path: Path) -> None:
    db = await make_store(tmp_path / "pb.db", generate(80, seed=6, mailboxes=("a@example.com", "b@example.com")))
    conn = sqlite3.connect(db, isolation_level=None)
    old = read_snapshot(conn, DIALER)
    conn.execute("DELETE FROM contact_phones WHERE contact_id IN (SELECT id FROM contacts WHERE id % 7 = 0)")
    conn.execute("DELETE FROM contacts WHERE id % 7 = 0")
    conn.execute("UPDATE contacts SET display_name = 'Aaron ' || display_name WHERE id % 5 = 0")
    new = read_snapshot(conn, DIALER, old)
    assert same(new, read_snapshot(conn, DIALER))
    assert len(new.everything) < len(old.everything)
