"""SQL `IN` lists stay below SQLite's variable limit, whatever it was compiled with (issue 14)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbxsync.plugin.autocall.store import call_states
from pbxsync.plugin.booking.pins import booking_pins
from pbxsync.sync.store.contacts import list_contacts
from pbxsync.sync.store.db import IN_BATCH, Store, in_batches, open_store

OLD_SQLITE_LIMIT = 999  # SQLITE_MAX_VARIABLE_NUMBER before 3.32, and what some builds still use


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(tmp_path / "in.db")
    conn = opened.conn
    await conn._execute(conn._conn.setlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, OLD_SQLITE_LIMIT)  # type: ignore[attr-defined]
    yield opened
    await opened.close()


async def test_listings_of_many_bookings_work_under_the_old_variable_limit(store: Store) -> None:
    ids = list(range(1, 5001))
    assert await booking_pins(store, ids) == {}
    assert await call_states(store, ids) == {}
    assert await list_contacts(store) == []


def test_batches_cover_everything_once_with_matching_placeholders() -> None:
    values = list(range(IN_BATCH * 2 + 7))
    seen: list[int] = []
    for chunk, marks in in_batches(values):
        assert len(chunk) <= IN_BATCH < OLD_SQLITE_LIMIT and marks.count("?") == len(chunk)
        seen.extend(chunk)
    assert seen == values
    assert list(in_batches([])) == []
