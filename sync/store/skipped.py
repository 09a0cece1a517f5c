"""Items a source skipped, per mailbox and folder: what `pbxsync users` reports as "N skipped"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import aiosqlite

from pbxsync.sync.model import Folder, SkippedItem, parse_utc, utc_text
from pbxsync.sync.store.db import Store

LATEST_REASONS = 5  # how many of the newest skipped items a folder summary carries


@dataclass(frozen=True)
class StoredSkip:
    location: str
    item_id: str
    reason: str
    seen_at: datetime


@dataclass(frozen=True)
class SkipSummary:
    count: int = 0
    latest: tuple[StoredSkip, ...] = field(default_factory=tuple)  # newest first


async def record_skips(conn: aiosqlite.Connection, mailbox: str, folder: Folder, now: datetime,
                       skipped: Iterable[SkippedItem], *, settled: Iterable[str] = (),
                       complete: bool = False) -> None:
    """Call inside the transaction that stores the folder's data.

    `settled`: ids that were synced or deleted in this pass (no longer skipped). `complete`: `skipped` is
    every skipped item of the folder (a full fetch), so older rows not in it are gone.
    """
    if complete:
        await conn.execute("DELETE FROM skipped_items WHERE mailbox = ? AND folder = ?", (mailbox, folder.value))
    else:
        await conn.executemany("DELETE FROM skipped_items WHERE mailbox = ? AND folder = ? AND item_id = ?",
                               [(mailbox, folder.value, i) for i in dict.fromkeys(settled)])
    await conn.executemany(
        """INSERT INTO skipped_items (mailbox, folder, item_id, location, reason, seen_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (mailbox, folder, item_id) DO UPDATE SET
               location = excluded.location, reason = excluded.reason, seen_at = excluded.seen_at""",
        [(mailbox, folder.value, s.item_id, s.folder, s.reason[:300], utc_text(now)) for s in skipped],
    )


async def skip_summaries(store: Store) -> dict[tuple[str, Folder], SkipSummary]:
    """Per (mailbox, folder) that has skipped items: their count and the newest few."""
    counts: dict[tuple[str, Folder], int] = {}
    async with store.conn.execute(
        "SELECT mailbox, folder, count(*) FROM skipped_items GROUP BY mailbox, folder"
    ) as cur:
        async for mailbox, folder, n in cur:
            counts[(str(mailbox), Folder(str(folder)))] = int(n)
    latest: dict[tuple[str, Folder], list[StoredSkip]] = {}
    async with store.conn.execute(
        """SELECT mailbox, folder, location, item_id, reason, seen_at FROM (
               SELECT *, row_number() OVER (PARTITION BY mailbox, folder ORDER BY seen_at DESC, item_id) AS n
                 FROM skipped_items)
            WHERE n <= ? ORDER BY mailbox, folder, n""", (LATEST_REASONS,)
    ) as cur:
        async for mailbox, folder, location, item_id, reason, seen_at in cur:
            latest.setdefault((str(mailbox), Folder(str(folder))), []).append(
                StoredSkip(str(location), str(item_id), str(reason), parse_utc(str(seen_at))))
    return {key: SkipSummary(n, tuple(latest.get(key, ()))) for key, n in counts.items()}
