"""Following the store from a server that answers out of memory (the LDAP index, the XML phonebook).

One read-only SQLite connection, used on one worker thread, so a long read never holds the event loop.
`read(force)` runs the caller's reading only when another connection committed since the last one
(SQLite's `PRAGMA data_version`), or always with `force`; `follow()` checks every `interval` seconds and
whenever `wake()` is called (after a sync pass). A failed read closes the connection (the next read opens
a new one) and raises to the caller.

Readings of every follower in the process take turns (`_ONE_READING_AT_A_TIME`): a reading holds the
old copy and the new one being built, so the LDAP index and the XML phonebook re-read after the same
sync one after the other: the daemon holds one rebuild in progress at a time, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

_ONE_READING_AT_A_TIME = threading.Lock()


class StoreFollower(Generic[T]):
    def __init__(self, db_path: str, load: Callable[[sqlite3.Connection, bool], T | None], thread_name: str) -> None:
        """`load(conn, force)` reads what the server needs, or returns None to keep what it has."""
        self.db_path = db_path
        self._load = load
        self._thread_name = thread_name
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=thread_name)
        self._reader: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._wake = asyncio.Event()

    async def read(self, force: bool) -> T | None:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker, self._read, force)
        except BaseException:
            await loop.run_in_executor(self._worker, self._close_reader)
            raise

    def wake(self) -> None:
        self._wake.set()

    async def follow(self, interval: float, reload: Callable[[], Awaitable[object]]) -> None:
        """Call `reload()` every `interval` seconds (0: only when woken) and when woken; runs until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval if interval > 0 else None)
            self._wake.clear()
            await reload()

    async def close(self) -> None:
        """Close the connection (queued behind a read still running); `read` may be called again later."""
        await asyncio.get_running_loop().run_in_executor(self._worker, self._close_reader)
        self._worker.shutdown(wait=False)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)

    def _read(self, force: bool) -> T | None:
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None,
                                           check_same_thread=False)
            self._reader.execute("PRAGMA busy_timeout = 5000")
        version = int(self._reader.execute("PRAGMA data_version").fetchone()[0])
        if not force and version == self._data_version:
            return None
        with _ONE_READING_AT_A_TIME:
            loaded = self._load(self._reader, force)
        self._data_version = version
        return loaded

    def _close_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None
