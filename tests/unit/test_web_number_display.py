"""The numbers' stored display forms (migration 0014, plugin/web/number_display.py): filled in after the
sync wrote numbers without them, used by *My contacts*, never written onto a number that has changed."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxsync.plugin.web import number_display
from pbxsync.plugin.web.contact_view import contact_view
from pbxsync.plugin.web.number_display import NumberFormsFiller, fill_number_forms, number_forms
from pbxsync.sync.model import Contact, PhoneKind
from pbxsync.sync.phones import phone_number
from pbxsync.sync.plan import ContactPlan
from pbxsync.sync.store.contacts import apply_contact_plan, contact_by_id, list_contacts
from pbxsync.sync.store.db import Store

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def card(item: str, name: str, *numbers: str) -> Contact:
    return Contact(item, "ck", name, phones=tuple(phone_number(PhoneKind.BUSINESS, n, "DE") for n in numbers))


async def write(store: Store, *contacts: Contact) -> None:
    async with store.transaction() as conn:
        await apply_contact_plan(conn, "bob@example.com", ContactPlan(inserts=contacts), NOW)


async def stored_forms(store: Store) -> list[tuple[str, str | None, str | None]]:
    async with store.conn.execute("SELECT raw, national, international FROM contact_phones ORDER BY rowid") as cur:
        return [(str(r), n, i) for r, n, i in await cur.fetchall()]


async def test_the_sync_writes_numbers_without_forms_and_the_filler_adds_them(store: Store) -> None:
    await write(store, card("1", "Carla Kunde", "030 1234 5678", "0171 2223334"), card("2", "Pförtner", "**12"))
    assert [f[1] for f in await stored_forms(store)] == [None, None, None]
    assert await fill_number_forms(store) == 3
    assert await stored_forms(store) == [("030 1234 5678", "030 12345678", "+49 30 12345678"),
                                         ("0171 2223334", "0171 2223334", "+49 171 2223334"),
                                         ("**12", "**12", "")]  # no E.164 form: shown as typed
    assert await fill_number_forms(store) == 0  # nothing left to do


async def test_my_contacts_shows_the_stored_forms_and_formats_the_rest_itself(store: Store) -> None:
    await write(store, card("1", "Carla Kunde", "030 1234 5678", "089 1234567"))
    # One number formatted (here by hand, to tell stored from computed), the other not yet.
    await store.conn.execute("UPDATE contact_phones SET national = 'stored national', international = 'stored intl' "
                             "WHERE raw = '030 1234 5678'")
    (carla,) = await list_contacts(store)
    assert carla.display == (("stored national", "stored intl"), None)
    view = contact_view(carla)
    assert [(n.national, n.international) for n in view.numbers] == [
        ("stored national", "stored intl"), number_forms("089 1234567", "+49891234567")]
    assert view.as_json()["numbers"] == [
        {"index": 0, "kind": "Business", "national": "stored national", "international": "stored intl",
         "callable": True},
        {"index": 1, "kind": "Business", "national": "089 1234567", "international": "+49 89 1234567",
         "callable": True}]
    again = await contact_by_id(store, carla.id)
    assert again is not None and again.contact.phones == carla.contact.phones  # order and values kept


async def test_a_number_replaced_while_it_was_formatted_keeps_no_stale_forms(store_on_disk: Store, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_on_disk
    await write(store, card("1", "Carla Kunde", "030 1234 5678"))
    formatted = []

    def format_while_the_sync_replaces_it(raw: str, e164: str | None) -> tuple[str, str]:
        formatted.append(raw)
        if len(formatted) == 1:  # the sync rewrites the number under the same rowid meanwhile
            with sqlite3.connect(tmp_path / "pbxsync.db") as other:
                other.execute("UPDATE contact_phones SET raw = '040 999', e164 = '+4940999'")
        return number_forms(raw, e164)

    monkeypatch.setattr(number_display, "number_forms", format_while_the_sync_replaces_it)
    assert await fill_number_forms(store) == 0  # the old number's forms were not written onto the new one
    assert await stored_forms(store) == [("040 999", None, None)]
    assert await fill_number_forms(store) == 1
    assert await stored_forms(store) == [("040 999", "040 999", "+49 40 999")]


async def test_a_wake_during_a_run_runs_it_again_and_close_stops_it(store: Store) -> None:
    await write(store, card("1", "Carla Kunde", "030 1234 5678"))
    filler = NumberFormsFiller(store)
    filler.wake()
    filler.wake()  # while the first run is under way: one more run afterwards, not a second task
    await write(store, card("2", "Dora", "089 7654321"))  # arrives while the filler runs
    await filler.idle()
    assert all(national is not None for _, national, _ in await stored_forms(store))
    filler.wake()
    await filler.close()
    await asyncio.sleep(0)
    await filler.idle()  # closed: nothing left running
