"""The database's privacy and health: file modes, errors told apart, the integrity check (issue 14)."""

from __future__ import annotations

import grp
import os
import sqlite3
from pathlib import Path

import pytest

from pbxsync.sync.errors import StoreCorruptError, StoreError, StorePermissionError, StoreReadOnlyError
from pbxsync.sync.store.db import open_store, store_error
from tests.support.store_damage import damaged_database


async def test_a_new_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask would make them 0644
    try:
        store = await open_store(tmp_path / "p.db")
        await store.conn.execute("CREATE TABLE t(x)")  # something written: the -wal and -shm exist
        for name in ("p.db", "p.db-wal", "p.db-shm"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
        await store.close()
        group = grp.getgrgid(os.getgid()).gr_name
        shared = await open_store(tmp_path / "g.db", group)
        await shared.conn.execute("CREATE TABLE t(x)")
        for name in ("g.db", "g.db-wal", "g.db-shm"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
        await shared.close()
    finally:
        os.umask(old)


def _error(action: str, path: Path) -> sqlite3.Error:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute(action)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("no error")


def test_read_only_permission_and_corruption_are_told_apart(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    sqlite3.connect(good).execute("CREATE TABLE t(x)").connection.commit()
    read_only = store_error(_error("INSERT INTO t VALUES (1)", good), "sync")
    cannot_open = store_error(_error("SELECT 1", tmp_path / "missing" / "x.db"), "open")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database " * 500)
    damaged = store_error(_error("SELECT * FROM sqlite_master", garbage), "open")
    assert isinstance(read_only, StoreReadOnlyError) and "is read-only" in str(read_only)
    assert isinstance(cannot_open, StorePermissionError) and "cannot open" in str(cannot_open)
    assert isinstance(damaged, StoreCorruptError) and "is damaged" in str(damaged)
    assert len({type(e) for e in (read_only, cannot_open, damaged)}) == 3
    assert not isinstance(read_only, StoreCorruptError)  # the finding: read-only was called "damaged"


async def test_the_integrity_check_at_open_finds_a_damaged_page(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "ok.db", check_integrity=True)
    assert store.integrity == "ok"
    await store.close()
    store = await open_store(await damaged_database(tmp_path / "bad.db"), check_integrity=True)
    assert store.integrity not in ("ok", "")
    await store.close()


async def test_garbage_is_a_corrupt_store_not_a_generic_one(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorruptError, match="damaged"):
        await open_store(path)
    with pytest.raises(StoreError):
        await open_store(path)
