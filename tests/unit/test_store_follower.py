"""Followers of the store (the LDAP index, the XML phonebook) read it one at a time, so the daemon never
holds two rebuilds in progress at once (plugin.store_follower)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from pbxsync.plugin import store_follower
from pbxsync.plugin.store_follower import StoreFollower


async def test_every_followers_reading_holds_the_one_reading_lock(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    sqlite3.connect(db).close()
    seen: list[tuple[str, bool]] = []

    def reading(name: str) -> Callable[[sqlite3.Connection, bool], str]:
        def load(conn: sqlite3.Connection, force: bool) -> str:
            # Held while reading: a second follower's reading waits for it (threading.Lock).
            seen.append((name, store_follower._ONE_READING_AT_A_TIME.locked()))
            return name
        return load

    ldap = StoreFollower(str(db), reading("ldap"), "ldap")
    phonebook = StoreFollower(str(db), reading("phonebook"), "phonebook")
    try:
        assert await asyncio.gather(ldap.read(True), phonebook.read(True)) == ["ldap", "phonebook"]
    finally:
        await ldap.close()
        await phonebook.close()
    assert sorted(seen) == [("ldap", True), ("phonebook", True)]
    assert not store_follower._ONE_READING_AT_A_TIME.locked()
