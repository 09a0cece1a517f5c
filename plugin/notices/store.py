"""The notices' rows in SQLite (tables organizer_notices, organizer_notice_booked): what was planned, sent,
failed. SQLite is what makes "never twice" survive a restart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping
from datetime import datetime

from pbxsync.plugin.notices.plan import NoticePlan, NoticeRow, NoticeState
from pbxsync.sync.errors import StoreError
from pbxsync.sync.model import parse_utc, utc_text
from pbxsync.sync.store.db import Store

_COLUMNS = "id, booking_id, reason, state, attempts, next_attempt_at, last_error, recipient"
MAX_ERROR = 300


def _row(r: sqlite3.Row | tuple[object, ...]) -> tuple[NoticeRow, str]:
    row = NoticeRow(id=int(str(r[0])), booking_id=int(str(r[1])), reason=str(r[2]), state=NoticeState(str(r[3])),
                    attempts=int(str(r[4])), next_attempt_at=parse_utc(str(r[5])),
                    last_error=None if r[6] is None else str(r[6]))
    return row, str(r[7])


async def load_booked(store: Store) -> set[int]:
    async with store.conn.execute("SELECT booking_id FROM organizer_notice_booked") as cur:
        return {int(r[0]) async for r in cur}


async def load_rows(store: Store, booking_ids: Collection[int]) -> dict[int, tuple[NoticeRow, str]]:
    """Every notice row of `booking_ids` and every pending one, by id, with its recipient."""
    async with store.conn.execute(
        f"SELECT {_COLUMNS} FROM organizer_notices WHERE state = 'pending' OR booking_id IN "
        "(SELECT value FROM json_each(?)) ORDER BY id", (json.dumps(sorted(booking_ids)),)
    ) as cur:
        return {row.id: (row, recipient) for row, recipient in [_row(tuple(r)) async for r in cur]}


async def notices_of(store: Store, booking_ids: Collection[int]) -> dict[int, list[NoticeRow]]:
    """The notices of each booking (for `pbxsync conferences`), oldest first."""
    found: dict[int, list[NoticeRow]] = {}
    async with store.conn.execute(
        f"SELECT {_COLUMNS} FROM organizer_notices WHERE booking_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY id", (json.dumps(sorted(booking_ids)),)
    ) as cur:
        async for r in cur:
            row, _ = _row(tuple(r))
            found.setdefault(row.booking_id, []).append(row)
    return found


async def apply_plan(store: Store, plan: NoticePlan, languages: Mapping[str, str], now: datetime) -> None:
    """Records the plan; `languages`: the language of each recipient's notices (recorded with them)."""
    if plan.empty:
        return
    at = utc_text(now)
    try:
        async with store.transaction() as conn:
            await conn.executemany("INSERT OR IGNORE INTO organizer_notice_booked (booking_id) VALUES (?)",
                                   [(b,) for b in plan.mark_booked])
            # OR IGNORE: a concurrent pass ("Sync now" beside a timer pass) planned the same notice first.
            await conn.executemany(
                "INSERT OR IGNORE INTO organizer_notices (booking_id, reason, recipient, language, state, "
                "next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                [(n.booking_id, n.reason, n.recipient, languages.get(n.recipient, ""), at, at) for n in plan.create])
            await conn.executemany("UPDATE organizer_notices SET state = 'obsolete' WHERE id = ? AND state = 'pending'",
                                   [(i,) for i in plan.obsolete])
    except sqlite3.Error as exc:
        raise StoreError(f"recording notices failed: {exc}") from exc


async def claim(store: Store, notice_id: int, attempts: int) -> bool:
    """Take one pending notice for sending: False when another pass already took or finished it (the
    attempts counter is the ticket), so two passes at once never send one notice twice."""
    async with store.transaction() as conn:
        cur = await conn.execute("UPDATE organizer_notices SET attempts = attempts + 1 WHERE id = ? AND "
                                 "state = 'pending' AND attempts = ?", (notice_id, attempts))
        return cur.rowcount == 1


async def record_sent(store: Store, notice_id: int, now: datetime) -> None:
    async with store.transaction() as conn:
        await conn.execute("UPDATE organizer_notices SET state = 'sent', sent_at = ?, last_error = NULL "
                           "WHERE id = ?", (utc_text(now), notice_id))


async def record_failure(store: Store, notice_id: int, state: NoticeState, next_attempt: datetime,
                         error: str) -> None:
    async with store.transaction() as conn:
        await conn.execute("UPDATE organizer_notices SET state = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                           (state.value, utc_text(next_attempt), error[:MAX_ERROR], notice_id))
