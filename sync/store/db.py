"""Opening the database: WAL, foreign keys, numbered migrations, one writer at a time.

Migrations are `migrations/NNNN_name.sql`, applied in order, each in its own transaction together with
the `PRAGMA user_version` bump, so a crash mid-migration leaves the previous version intact. A database
whose version is higher than the newest migration here was written by a newer pbxsync and is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import aiosqlite

from pbxsync.sync.errors import SchemaTooNewError, StoreError

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("pbxsync.sync.store.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise StoreError(f"migration numbering has a gap or duplicate at {mig.name}")
    return found


def latest_version() -> int:
    return len(migrations())


class Store:
    """One aiosqlite connection. Reads run directly; writes go through `transaction()`."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception: nothing is ever half-stored."""
        async with self._write_lock:
            try:
                # Inside the try: a task cancelled while BEGIN is queued must still roll back, or the
                # shared connection would be left inside a transaction for the next writer. The same
                # holds for a COMMIT that fails (a deferred constraint, SQLITE_BUSY, I/O): SQLite keeps
                # the transaction open then, and every later BEGIN would fail.
                await self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                await self.conn.execute("COMMIT")
            except BaseException:
                await self._rollback_quietly()
                raise

    async def _rollback_quietly(self) -> None:
        # aiosqlite runs statements in order on its thread, so this ROLLBACK follows the BEGIN even
        # when the BEGIN's awaiting task was cancelled; shielded so a second cancel cannot skip it.
        # OperationalError: no transaction is open (BEGIN never ran, or SQLite already rolled back).
        with contextlib.suppress(sqlite3.OperationalError):
            await asyncio.shield(self.conn.execute("ROLLBACK"))

    async def close(self) -> None:
        await self.conn.close()


async def _user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: aiosqlite.Connection) -> int:
    current = await _user_version(conn)
    known = migrations()
    if current > len(known):
        raise SchemaTooNewError(
            f"database schema version {current} is newer than this pbxsync understands ({len(known)}); "
            "upgrade pbxsync or restore a backup"
        )
    for mig in known[current:]:
        try:
            await conn.executescript(f"BEGIN IMMEDIATE;\n{mig.sql}\nPRAGMA user_version = {mig.version};\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise StoreError(f"migration {mig.name} failed: {exc}") from exc
    return len(known)


async def open_store(path: str | Path) -> Store:
    """Open (creating if needed) and migrate the database at `path` (":memory:" for tests)."""
    text = str(path)
    if text != ":memory:":
        Path(text).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = await aiosqlite.connect(text, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {text}: {exc}") from exc
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await migrate(conn)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise StoreError(f"database {text} is unusable: {exc}") from exc
    except BaseException:
        await conn.close()
        raise
    return Store(conn, text)
