"""The store: migrations, refusal of a newer schema, atomic transactions, and lossless round trips."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsync.sync.errors import SchemaTooNewError, StoreError
from pbxsync.sync.model import Contact, Folder, Occurrence
from pbxsync.sync.plan import CalendarPlan, ContactPlan, SyncWindow, sync_window
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import contacts as contact_store
from pbxsync.sync.store import folders
from pbxsync.sync.store.db import latest_version, migrations, open_store
from tests.support.strategies import contacts, occurrences

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def test_new_database_is_migrated_to_the_latest_version(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db" / "pbxsync.db")
    async with store.conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    async with store.conn.execute("PRAGMA journal_mode") as cur:
        mode = await cur.fetchone()
    await store.close()
    assert row is not None and row[0] == latest_version()
    assert mode is not None and mode[0] == "wal"


async def test_upgrade_keeps_autocall_attempts_and_allows_the_cancelled_outcome(tmp_path: Path) -> None:
    """0005 rebuilds autocall_attempts (a CHECK constraint cannot be altered): rows survive it."""
    path = tmp_path / "v4.db"
    async with aiosqlite.connect(path) as conn:
        for mig in migrations()[:4]:
            await conn.executescript(f"BEGIN;\n{mig.sql}\nPRAGMA user_version = {mig.version};\nCOMMIT;")
        await conn.executescript("""
            INSERT INTO bookings (id, uid, recurrence_key, subject, location, start_utc, end_utc, timezone, autocall,
                                  state, room, organizer_email, organizer_extension, created_at, updated_at)
                VALUES (1, 'u', '', 's', 'PBX AUTOCALL', '2026-11-27T10:00:00+00:00', '2026-11-27T11:00:00+00:00',
                        'UTC', 1, 'scheduled', '8001', 'o@x', '101', '2026-11-27T09:00:00+00:00',
                        '2026-11-27T09:00:00+00:00');
            INSERT INTO booking_participants (id, booking_id, position, extension, email, name, role, response,
                                              invited, copy_state, call)
                VALUES (1, 1, 0, '101', 'a@x', 'A', 'host', 'organizer', 1, 'present', 1);
            INSERT INTO autocall_attempts (booking_id, participant_id, extension, attempt, channel_id, outcome,
                                           created_at)
                VALUES (1, 1, '101', 1, 'pbxsync-1-1-1-abcdef01', 'busy', '2026-11-27T10:00:00+00:00');
        """)
    store = await open_store(path)
    async with store.transaction() as conn:
        await conn.execute("INSERT INTO autocall_attempts (booking_id, participant_id, extension, attempt, channel_id,"
                           " outcome, created_at) VALUES (1, 1, '101', 2, 'pbxsync-1-1-2-abcdef01', 'cancelled', 'x')")
    async with store.conn.execute("SELECT attempt, outcome FROM autocall_attempts ORDER BY attempt") as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    await store.close()
    assert rows == [(1, "busy"), (2, "cancelled")]


async def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with aiosqlite.connect(path) as conn:
        await conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
        await conn.commit()
    with pytest.raises(SchemaTooNewError, match="newer than this pbxsync"):
        await open_store(path)


async def test_garbage_file_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="unusable"):
        await open_store(path)


async def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    contact = Contact("id1", "ck1", "Alice")
    with pytest.raises(RuntimeError):
        async with store.transaction() as conn:
            await contact_store.apply_contact_plan(conn, "a@example.com", ContactPlan(inserts=(contact,)), NOW)
            raise RuntimeError("crash mid-write")
    assert await contact_store.list_contacts(store) == []
    await store.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(contacts, max_size=5, unique_by=lambda c: c.item_id))
def test_contacts_round_trip(batch: list[Contact]) -> None:
    async def scenario() -> list[Contact]:
        store = await open_store(":memory:")
        async with store.transaction() as conn:
            await contact_store.apply_contact_plan(conn, "a@example.com", ContactPlan(inserts=tuple(batch)), NOW)
        rows = await contact_store.list_contacts(store, "a@example.com")
        await store.close()
        return [r.contact for r in rows]

    stored = asyncio.run(scenario())
    assert sorted(stored, key=lambda c: c.item_id) == sorted(batch, key=lambda c: c.item_id)


@settings(max_examples=60, deadline=None)
@given(st.lists(occurrences(), max_size=5, unique_by=lambda o: o.item_id))
def test_occurrences_round_trip(batch: list[Occurrence]) -> None:
    async def scenario() -> list[Occurrence]:
        store = await open_store(":memory:")
        async with store.transaction() as conn:
            await calendar_store.apply_calendar_plan(conn, "a@example.com", CalendarPlan(inserts=tuple(batch)), NOW)
        rows = await calendar_store.load_occurrences(store)
        await store.close()
        return [r.occurrence for r in rows]

    stored = asyncio.run(scenario())
    assert sorted(stored, key=lambda o: o.item_id) == sorted(batch, key=lambda o: o.item_id)


async def test_search_finds_every_number_form() -> None:
    from pbxsync.sync.model import PhoneKind
    from pbxsync.sync.phones import digits_of, normalise_phone, to_e164

    store = await open_store(":memory:")
    alice_phone = normalise_phone(PhoneKind.BUSINESS, "+49 30 1234-4711", "DE")
    bob_phone = normalise_phone(PhoneKind.MOBILE, "0170 1234567", "DE")
    assert alice_phone is not None and bob_phone is not None
    alice = Contact("c1", "k1", "Alice Müller", company="Acme GmbH", phones=(alice_phone,))
    bob = Contact("c2", "k2", "Bob Stone", phones=(bob_phone,))
    async with store.transaction() as conn:
        await contact_store.apply_contact_plan(conn, "a@example.com", ContactPlan(inserts=(alice, bob)), NOW)
    for query in ("03012344711", "+493012344711", "4711", "030 1234 4711", "müller", "acme"):
        found = await contact_store.search_contacts(store, query, to_e164(query, "DE"), digits_of(query))
        assert [r.contact.display_name for r in found] == ["Alice Müller"], query
    assert await contact_store.search_contacts(store, "100%", to_e164("100%", "DE"), digits_of("100%")) == []
    await store.close()


async def test_a_writer_cancelled_at_begin_leaves_no_open_transaction() -> None:
    store = await open_store(":memory:")
    started = asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as conn:
            started.set()
            await conn.execute("INSERT INTO address_cache (address, smtp, resolved_at) VALUES ('x', 'y', 'z')")
            await asyncio.Event().wait()  # hang until cancelled

    for _ in range(20):  # cancel at different points, including while BEGIN is queued
        task = asyncio.ensure_future(writer())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    task = asyncio.ensure_future(writer())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.transaction() as conn:  # the next writer is not "within a transaction"
        await conn.execute("INSERT INTO address_cache (address, smtp, resolved_at) VALUES ('a', 'b', 'c')")
    async with store.conn.execute("SELECT address FROM address_cache") as cur:
        assert [r[0] async for r in cur] == ["a"]
    await store.close()


async def test_a_failed_commit_rolls_back_and_leaves_the_store_usable() -> None:
    import sqlite3

    store = await open_store(":memory:")
    try:
        # A deferred foreign key is checked at COMMIT: the COMMIT fails and SQLite keeps the transaction open.
        await store.conn.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
        await store.conn.execute("CREATE TEMP TABLE child (parent_id INTEGER REFERENCES parent (id) "
                                 "DEFERRABLE INITIALLY DEFERRED)")
        with pytest.raises(sqlite3.IntegrityError):
            async with store.transaction() as conn:
                await conn.execute("INSERT INTO address_cache (address, smtp, resolved_at) VALUES ('x', 'y', 'z')")
                await conn.execute("INSERT INTO child (parent_id) VALUES (42)")
        assert not store.conn.in_transaction
        async with store.transaction() as conn:  # the next writer is not "within a transaction"
            await conn.execute("INSERT INTO address_cache (address, smtp, resolved_at) VALUES ('a', 'b', 'c')")
        async with store.conn.execute("SELECT address FROM address_cache") as cur:
            assert [r[0] async for r in cur] == ["a"]  # nothing of the failed transaction was kept
    finally:
        await store.close()


async def test_the_folder_state_names_the_window_it_was_synced_over() -> None:
    store = await open_store(":memory:")
    try:
        span = sync_window(NOW, 1, 30)
        assert span == SyncWindow(start=datetime(2026, 11, 26, tzinfo=UTC), end=datetime(2026, 12, 28, tzinfo=UTC))
        assert (await folders.folder_state(store, "a@example.com", Folder.CALENDAR)).window is None
        async with store.transaction() as conn:
            await folders.record_success(conn, "a@example.com", Folder.CALENDAR, NOW, "state-1", span)
        state = await folders.folder_state(store, "a@example.com", Folder.CALENDAR)
        assert state.window == span and state.sync_state == "state-1" and state.last_success == NOW
    finally:
        await store.close()
