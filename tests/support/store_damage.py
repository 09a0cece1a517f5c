"""A database SQLite still opens but whose integrity check fails: for the health tests."""

from __future__ import annotations

from pathlib import Path

from pbxsync.sync.store.db import open_store

PAGE = 4096


async def damaged_database(path: Path) -> Path:
    """A migrated database with a few garbage bytes in an index page near its end."""
    store = await open_store(path)
    await store.conn.execute("CREATE TABLE filler(x BLOB)")
    await store.conn.execute("CREATE INDEX filler_x ON filler(x)")
    # deterministic rows (not randomblob): the same page layout, so the same damage, in every run
    await store.conn.executemany("INSERT INTO filler VALUES (printf('%0200d', ?))", [(i * 7919,) for i in range(3000)])
    await store.close()
    data = bytearray(path.read_bytes())
    data[len(data) - 3 * PAGE + 200:len(data) - 2 * PAGE] = b"\x5a" * (PAGE - 200)
    path.write_bytes(bytes(data))
    return path
