"""Opening the database: WAL, foreign keys, numbered migrations, one writer at a time.

Migrations are `migrations/NNNN_name.sql`, applied in order, each in its own transaction together with
the `PRAGMA user_version` bump, so a crash mid-migration leaves the previous version intact. A database
whose version is higher than the newest migration here was written by a newer pbxsync and is refused.

A new database is created 0600 (0640 when a group is given): SQLite gives its -wal and -shm files the
same mode. `PRAGMA quick_check` runs at open when asked (the daemon asks, once at start); its verdict is
`Store.integrity` for `status`. sqlite3 errors become StoreReadOnlyError, StorePermissionError or
StoreCorruptError by their error code, so a read-only file is never reported as a damaged one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import aiosqlite

from pbxsync.sync.errors import (
    SchemaTooNewError,
    StoreCorruptError,
    StoreError,
    StorePermissionError,
    StoreReadOnlyError,
)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Values per `IN (?, ?, …)` list: far below SQLite's variable limit (999 before 3.32, 32766 after, and
# whatever a distribution compiled in), so a long list never fails with "too many SQL variables".
IN_BATCH = 500
T = TypeVar("T")


def in_batches(values: Sequence[T], size: int = IN_BATCH) -> Iterator[tuple[Sequence[T], str]]:
    """`values` in slices of at most `size`, each with its placeholders ("?,?,?") for `IN (…)`."""
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        yield chunk, ",".join("?" * len(chunk))


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

    def __init__(self, conn: aiosqlite.Connection, path: str, integrity: str = "ok") -> None:
        self.conn = conn
        self.path = path
        self.integrity = integrity  # PRAGMA quick_check at open: "ok", or what is damaged
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
            raise store_error(exc, f"migration {mig.name}") from exc
    return len(known)


def store_error(exc: sqlite3.Error, doing: str, path: str = "") -> StoreError:
    """One of our errors for a sqlite3 one, told apart by SQLite's (primary) error code."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    where = f"database {path}" if path else "the database"
    if primary == sqlite3.SQLITE_READONLY:
        return StoreReadOnlyError(f"{where} is read-only ({doing}: {exc}): the file, its directory and the "
                                  "filesystem must be writable for the pbxsync user")
    if primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        return StorePermissionError(f"cannot open {where} ({doing}: {exc}): check that its directory exists "
                                    "and the pbxsync user may read and write it")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptError(f"{where} is damaged, unusable ({doing}: {exc}): restore it from a backup")
    return StoreError(f"{where}: {doing} failed: {exc}")


def _create_private(path: Path, group: str) -> None:
    """Create the database file owner-only (group-readable with `group`) before SQLite creates it 0644."""
    mode = 0o640 if group else 0o600
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return  # an existing database keeps the mode its admin gave it
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; never added any
        if group:
            shutil.chown(path, group=group)
    finally:
        os.close(fd)


NOT_CHECKED = "not checked"


async def _quick_check(conn: aiosqlite.Connection) -> str:
    """"ok", or what is damaged. A damaged page still opens: the daemon runs and says so in `status`."""
    try:
        async with conn.execute("PRAGMA quick_check") as cur:
            rows = list(await cur.fetchall())
    except sqlite3.DatabaseError as exc:
        if not isinstance(store_error(exc, "quick_check"), StoreCorruptError):
            raise
        return str(exc)
    return "; ".join(str(r[0]) for r in rows[:5]) or "no answer"


async def open_store(path: str | Path, group: str = "", *, check_integrity: bool = False) -> Store:
    """Open (creating if needed) and migrate the database at `path` (":memory:" for tests).

    `check_integrity` runs PRAGMA quick_check, which reads the whole file: the daemon asks for it once at
    start (its verdict is `status`'s store health); a CLI listing does not pay for it on every call."""
    text = str(path)
    if text != ":memory:":
        try:
            Path(text).parent.mkdir(parents=True, exist_ok=True)
            _create_private(Path(text), group)
        except PermissionError as exc:
            raise StorePermissionError(f"cannot create database {text}: {exc.strerror}") from None
        except (OSError, LookupError) as exc:  # LookupError: no such group
            raise StoreError(f"cannot create database {text}: {exc}") from None
    try:
        conn = await aiosqlite.connect(text, isolation_level=None)
    except sqlite3.Error as exc:
        raise store_error(exc, "open", text) from exc
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        integrity = await _quick_check(conn) if check_integrity else NOT_CHECKED
        await migrate(conn)
    except sqlite3.Error as exc:
        await conn.close()
        raise store_error(exc, "open", text) from exc
    except BaseException:
        await conn.close()
        raise
    return Store(conn, text, integrity)
