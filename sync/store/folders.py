"""Per mailbox and folder: the incremental sync state and the last success or error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from pbxsync.sync.model import Folder, parse_utc, utc_text
from pbxsync.sync.plan import SyncWindow
from pbxsync.sync.store.db import Store


@dataclass(frozen=True)
class FolderState:
    mailbox: str
    folder: Folder
    sync_state: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    error_kind: str | None = None

    @property
    def window(self) -> SyncWindow | None:
        """The calendar window of the last complete fetch, None before the first."""
        if self.window_start is None or self.window_end is None:
            return None
        return SyncWindow(self.window_start, self.window_end)


def _when(text: str | None) -> datetime | None:
    return parse_utc(text) if text else None


_COLUMNS = "mailbox, folder, sync_state, window_start, window_end, last_attempt, last_success, last_error, error_kind"


def _row_to_state(row: aiosqlite.Row | tuple[object, ...]) -> FolderState:
    mailbox, folder, state, ws, we, attempt, success, error, kind = row
    return FolderState(str(mailbox), Folder(str(folder)), str(state), _when(ws), _when(we),  # type: ignore[arg-type]
                       _when(attempt), _when(success), error, kind)  # type: ignore[arg-type]


async def folder_state(store: Store, mailbox: str, folder: Folder) -> FolderState:
    async with store.conn.execute(
        f"SELECT {_COLUMNS} FROM folder_sync WHERE mailbox = ? AND folder = ?", (mailbox, folder.value)
    ) as cur:
        row = await cur.fetchone()
    return _row_to_state(row) if row else FolderState(mailbox, folder)


async def all_folder_states(store: Store) -> list[FolderState]:
    async with store.conn.execute(f"SELECT {_COLUMNS} FROM folder_sync ORDER BY mailbox, folder") as cur:
        rows = await cur.fetchall()
    return [_row_to_state(r) for r in rows]


async def record_success(conn: aiosqlite.Connection, mailbox: str, folder: Folder, now: datetime,
                         sync_state: str, window: SyncWindow | None = None) -> None:
    """Call inside the transaction that stored the data, so state and data never disagree."""
    ws, we = (utc_text(window.start), utc_text(window.end)) if window else (None, None)
    await conn.execute(
        """INSERT INTO folder_sync (mailbox, folder, sync_state, window_start, window_end,
                                    last_attempt, last_success, last_error, error_kind)
           VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)
           ON CONFLICT (mailbox, folder) DO UPDATE SET
               sync_state = excluded.sync_state,
               window_start = COALESCE(excluded.window_start, folder_sync.window_start),
               window_end = COALESCE(excluded.window_end, folder_sync.window_end),
               last_attempt = excluded.last_attempt, last_success = excluded.last_success,
               last_error = NULL, error_kind = NULL""",
        (mailbox, folder.value, sync_state, ws, we, utc_text(now), utc_text(now)),
    )


async def record_failure(store: Store, mailbox: str, folder: Folder, now: datetime, error: str, kind: str) -> None:
    """Remember the error; the stored data and the sync state stay exactly as they were."""
    async with store.transaction() as conn:
        await conn.execute(
            """INSERT INTO folder_sync (mailbox, folder, last_attempt, last_error, error_kind)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (mailbox, folder) DO UPDATE SET
                   last_attempt = excluded.last_attempt, last_error = excluded.last_error,
                   error_kind = excluded.error_kind""",
            (mailbox, folder.value, utc_text(now), error[:500], kind),
        )
