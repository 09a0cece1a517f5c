"""The contacts' search-as-you-type index (migration contact_search, sync/store/contact_search.py): what it
finds, that it follows every write, and that nothing typed is read as query syntax."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from pbxsync.sync.model import Contact, PhoneKind
from pbxsync.sync.phones import phone_number, search_forms
from pbxsync.sync.plan import ContactPlan
from pbxsync.sync.store import contact_search
from pbxsync.sync.store.contact_search import find_contacts, match_expression
from pbxsync.sync.store.contacts import apply_contact_plan
from pbxsync.sync.store.db import Store

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def card(item: str, name: str, *numbers: str, company: str = "") -> Contact:
    return Contact(item, "ck", name, company=company,
                   phones=tuple(phone_number(PhoneKind.BUSINESS, n, "DE") for n in numbers))


async def write(store: Store, mailbox: str, plan: ContactPlan) -> None:
    async with store.transaction() as conn:
        await apply_contact_plan(conn, mailbox, plan, NOW)


async def names(store: Store, text: str, mailboxes: list[str] | None = None) -> list[str]:
    found = await find_contacts(store, text, search_forms(text, "DE"), 50, mailboxes=mailboxes)
    return [c.contact.display_name for c in found]


async def test_any_part_of_a_name_company_or_number_is_found(store: Store) -> None:
    await write(store, "bob@example.com", ContactPlan(inserts=(
        card("1", "Jürgen Müller", "030 1234 5678", company="ACME GmbH"), card("2", "Zoë Schmidt", "+49 89 9876"))))
    assert await names(store, "müll") == ["Jürgen Müller"]
    assert await names(store, "acme") == ["Jürgen Müller"]
    assert await names(store, "Zo") == ["Zoë Schmidt"]  # two characters: the start of a name
    for typed in ("5678", "+49 30 1234", "0049 30 12", "030 12", "4930123"):
        assert await names(store, typed) == ["Jürgen Müller"], typed
    assert await names(store, "78 49") == []  # never across two numbers
    assert await names(store, "müll", ["alice@example.com"]) == []


async def test_the_index_follows_updates_and_deletes(store: Store) -> None:
    first = card("1", "Carla Kunde", "030 1111 2222")
    await write(store, "bob@example.com", ContactPlan(inserts=(first,)))
    await write(store, "bob@example.com", ContactPlan(updates=(
        replace(first, display_name="Carla Neu", phones=(phone_number(PhoneKind.MOBILE, "0171 333 4444", "DE"),)),)))
    assert await names(store, "Kunde") == [] and await names(store, "1111") == []
    assert await names(store, "Neu") == ["Carla Neu"] and await names(store, "3334444") == ["Carla Neu"]
    await write(store, "bob@example.com", ContactPlan(deletes=("1",)))
    assert await names(store, "Neu") == [] and await names(store, "3334444") == []
    async with store.conn.execute("SELECT count(*) FROM contact_search") as cur:
        assert await cur.fetchone() == (0,)


@pytest.mark.parametrize("typed", ['"', 'a" OR names:*', "NEAR(a b)", "*", "x\x00y", "\u202e\u200b", "a" * 3000,
                                   "names : müll", "-müll", "^müll"])
async def test_nothing_typed_is_query_syntax(store: Store, typed: str) -> None:
    await write(store, "bob@example.com", ContactPlan(inserts=(card("1", "Jürgen Müller", "030 1234"),)))
    assert await names(store, typed) == []  # none of it is a part of his name: no error, nothing found


def test_every_term_is_one_quoted_string() -> None:
    assert match_expression('a"b', ["123"]) == 'names : "a""b" OR numbers : "123"'
    assert match_expression("ab", ["12"]) == ""


async def test_a_term_most_contacts_share_reads_a_bounded_part_of_the_index(store: Store,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contact_search, "SCAN_LIMIT", 10)
    await write(store, "alice@example.com", ContactPlan(inserts=tuple(
        card(str(i), f"Acme Person {i:02d}", company="ACME GmbH") for i in range(30))))
    await write(store, "bob@example.com", ContactPlan(inserts=(card("b1", "Zed Acme"), card("b2", "Anna Acme"))))
    found = await find_contacts(store, "acme", (), 50)
    assert len(found) == 10  # the first SCAN_LIMIT matches only, not all 32
    shown = [c.contact.display_name for c in found]
    assert shown == sorted(shown, key=str.lower)  # and those by name
    # The visible-mailbox check is inside the scan: Bob's two are found behind Alice's thirty.
    assert await names(store, "acme", ["bob@example.com"]) == ["Anna Acme", "Zed Acme"]
    # Fewer matches than the limit: every one, by name.
    assert await names(store, "person 1") == [f"Acme Person {i}" for i in range(10, 20)]
