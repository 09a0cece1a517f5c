"""What *My sync* shows, as plain data.

- `FolderView`: one folder of one user: whether it is synced, last success, the last error in words
  (what it means and what to do, from its kind; the stored one-line message beside it), and the items
  skipped because they could not be read.
- Progress of a "Sync now" (plugin.web.sync_jobs) is read from the store: a folder is done in this run
  once its last attempt is at or after the job's start (the engine records each folder as it finishes),
  so the page shows real progress, not a timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pbxsync.sync.config import UserConfig
from pbxsync.sync.model import Folder, parse_utc
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import FolderState, folder_state
from pbxsync.sync.store.skipped import StoredSkip

SKIPPED_SHOWN = 20  # the newest skipped items a folder lists

# An error's kind (sync.engine.error_kind) in words: what happened and what to do.
ERROR_WORDS = {
    "auth": "Exchange refused pbxsync's sign-in. Your administrator needs to check the service account.",
    "access": "pbxsync may not open this mailbox folder. Your administrator needs to grant access.",
    "busy": "Exchange was too busy and asked pbxsync to wait. The next sync tries again.",
    "data": "Exchange sent something pbxsync could not read. The next sync tries again.",
    "source": "Exchange could not be reached or answered with an error. The next sync tries again.",
    "store": "pbxsync's own database failed. Your administrator should look at the server.",
    "internal": "pbxsync failed unexpectedly. Your administrator should look at the logs.",
}
FOLDER_TITLES = {Folder.CONTACTS: "Contacts", Folder.CALENDAR: "Calendar"}


@dataclass(frozen=True)
class FolderView:
    folder: Folder
    enabled: bool
    state: FolderState
    skipped_count: int = 0
    skipped: tuple[StoredSkip, ...] = ()

    @property
    def title(self) -> str:
        return FOLDER_TITLES[self.folder]

    @property
    def error_words(self) -> str | None:
        if not self.state.last_error:
            return None
        return ERROR_WORDS.get(self.state.error_kind or "internal", ERROR_WORDS["internal"])

    def done_since(self, started: datetime) -> bool:
        attempt = self.state.last_attempt
        return attempt is not None and attempt >= started.replace(microsecond=0)


def folder_enabled(user: UserConfig, folder: Folder) -> bool:
    return user.sync_contacts if folder is Folder.CONTACTS else user.sync_calendar


async def folder_views(store: Store, user: UserConfig) -> list[FolderView]:
    mailbox = user.mailbox.lower()  # the store keeps mailboxes lower-case
    views = []
    for folder in (Folder.CONTACTS, Folder.CALENDAR):
        state = await folder_state(store, mailbox, folder)
        count, latest = await skipped_items(store, mailbox, folder)
        views.append(FolderView(folder, folder_enabled(user, folder), state, count, latest))
    return views


async def skipped_items(store: Store, mailbox: str, folder: Folder) -> tuple[int, tuple[StoredSkip, ...]]:
    """How many items of the folder are skipped, and the newest `SKIPPED_SHOWN` of them."""
    key = (mailbox, folder.value)
    async with store.conn.execute("SELECT count(*) FROM skipped_items WHERE mailbox = ? AND folder = ?", key) as cur:
        row = await cur.fetchone()
    async with store.conn.execute(
        "SELECT location, item_id, reason, seen_at FROM skipped_items WHERE mailbox = ? AND folder = ? "
        "ORDER BY seen_at DESC, item_id LIMIT ?", (*key, SKIPPED_SHOWN)) as cur:
        rows = await cur.fetchall()
    latest = tuple(StoredSkip(str(r[0]), str(r[1]), str(r[2]), parse_utc(str(r[3]))) for r in rows)
    return (int(row[0]) if row else 0), latest
