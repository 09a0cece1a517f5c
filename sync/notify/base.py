"""The contract between a backend's change feed and the daemon (sync/ side: knows nothing about the PBX).

A feed watches the synced folders and calls `notify(FolderChanged(...))` whenever one may have changed.
It never carries data: the daemon answers every notification with the NORMAL incremental sync of that
folder (same engine, planner and transaction as a timed pass), so a feed can be wrong only by being
late or by repeating itself, never by corrupting anything. Rules every feed keeps:

- `notify` may be called any number of times for a folder; the caller debounces.
- After a subscription was lost and re-created, the feed notifies that folder with reason "resubscribed"
  (changes made while it was gone are then picked up by the sync: never a missed change).
- A folder the feed gave up on (repeated failures) is listed in `FeedHealth.fallback_folders`; the
  daemon keeps timed polling for it. `health()` is cheap and never blocks (called by `pbxsync status`).
- `run` returns only when cancelled; it maps its library's errors itself and never raises them.

A backend makes its feed with a `FeedFactory`: `(config, source, clock) -> ChangeFeed | None` (None when
notifications are off or the backend has none): `Backend.make_feed` in sync/sources/backend.py, reached
through `sync.sources.factory.make_feed`. The source is passed so a feed can reuse its accounts, sessions
and per-mailbox limits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pbxsync.sync.model import Folder

if TYPE_CHECKING:
    from pbxsync.sync.config import Config
    from pbxsync.sync.sources.base import MailboxSource

REASONS = ("event", "resubscribed", "missed", "poll")
MODES = ("ews-streaming", "graph-webhook", "graph-polling", "off")


@dataclass(frozen=True)
class FolderChanged:
    mailbox: str  # lower-case primary SMTP
    folder: Folder  # sync.model.Folder.CONTACTS | CALENDAR
    reason: str  # "event" | "resubscribed" | "missed" | "poll"


@dataclass(frozen=True)
class FeedHealth:
    mode: str  # "ews-streaming" | "graph-webhook" | "graph-polling" | "off"
    subscriptions_healthy: int
    subscriptions_total: int
    last_event_age_seconds: float | None
    fallback_folders: tuple[str, ...]  # "mailbox/folder" now on timed polling
    resubscriptions: int
    detail: str = ""


OFF = FeedHealth("off", 0, 0, None, (), 0, "notifications off: timed passes only")


def folder_key(mailbox: str, folder: Folder) -> str:
    """The "mailbox/folder" spelling used in `FeedHealth.fallback_folders` and in logs."""
    return f"{mailbox}/{folder.value}"


class ChangeFeed(Protocol):
    async def run(self, folders: Sequence[tuple[str, Folder]], notify: Callable[[FolderChanged], None]) -> None:
        """Runs until cancelled; calls notify for each folder that changed (may repeat; the caller debounces)."""
        ...

    def health(self) -> FeedHealth: ...


class FeedClock(Protocol):
    """What a feed needs of time (the daemon's Clock fits): renewals and back-off are decided on it."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


FeedFactory = Callable[["Config", "MailboxSource", FeedClock], ChangeFeed | None]
