"""Change notifications beside the sync timers: Exchange names a changed folder, its normal sync follows.

Part of the sync service (`SyncService.notifications`, when the backend brings a feed and
`[exchange] notifications = "auto"`):
- The backend's feed (sync.notify) watches every synced folder; each `FolderChanged` goes into a
  debouncer, so a burst of events for one folder is one pass (due after 1 s of quiet, or 3 s after the
  first event).
- Folders due at the same moment (or within the next quiet second) are synced in ONE pass through
  `SyncService.sync_now(..., folders=...)`: the same engine, planner and transaction as a timed pass,
  and the same after-pass hooks (bookings and PINs, LDAP refresh, AUTOCALL re-arm). No second data
  path. At most `max_passes` such passes run at once.
- A folder whose pass failed is tried again 30 s, 60 s, 120 s later (a notification may be the only
  signal until the next timed pass).
- Folders the feed reports on fallback are synced every `[sync] fallback_interval_minutes`; all folders
  keep their timed passes (`[sync] interval_minutes`), the safety net.
- Metrics: pbxsync_notifications_total{reason}, pbxsync_notification_lag_seconds{mode} (first event of a
  burst to the end of its pass) and pbxsync_resubscriptions_total{mode}.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.debounce import DebouncePolicy, Debouncer, Pending
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.engine import FolderResult, PassSummary
from pbxsync.sync.model import Folder
from pbxsync.sync.notify.base import ChangeFeed, FeedHealth, FolderChanged
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.factory import make_feed

log = logging.getLogger("pbxsync.daemon.notify")
FolderKey = tuple[str, Folder]  # (lower-case mailbox, folder)


class PassRunner(Protocol):
    """What NotifiedSync needs of the sync service."""

    config: Config
    clock: Clock

    async def sync_now(self, users: Sequence[UserConfig] | None = None, trigger: str = "manual",
                       folders: Mapping[str, Collection[Folder]] | None = None) -> PassSummary: ...


def watched_folders(config: Config) -> list[FolderKey]:
    found: list[FolderKey] = []
    for user in config.users:
        if user.sync_calendar:
            found.append((user.mailbox.lower(), Folder.CALENDAR))
        if user.sync_contacts:
            found.append((user.mailbox.lower(), Folder.CONTACTS))
    return found


def parse_folder_key(text: str) -> FolderKey | None:
    """"mailbox/folder" (FeedHealth.fallback_folders) -> key; None if it is not one."""
    mailbox, _, folder = text.rpartition("/")
    return (mailbox.lower(), Folder(folder)) if mailbox and folder in {f.value for f in Folder} else None


async def run_beside(main: Awaitable[None], companion: Awaitable[None]) -> None:
    """Run `main` with `companion` alongside; the companion is cancelled when `main` returns, and its
    failure ends `main` and is raised (the supervisor then restarts the service)."""
    first, second = asyncio.ensure_future(main), asyncio.ensure_future(companion)
    try:
        await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (second, first):
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    for task in (second, first):
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _result(summary: PassSummary, key: FolderKey) -> FolderResult | None:
    for user in summary.users:
        if user.mailbox == key[0]:
            return user.contacts if key[1] is Folder.CONTACTS else user.calendar
    return None


class NotifiedSync:
    def __init__(self, feed: ChangeFeed, runner: PassRunner, *, debounce: DebouncePolicy | None = None,
                 max_passes: int = 2, retry_seconds: float = 30.0, max_retries: int = 3) -> None:
        self.feed = feed
        self.runner = runner
        self.clock = runner.clock
        self.debouncer: Debouncer[FolderKey] = Debouncer(debounce)
        self.retry_seconds = retry_seconds
        self.max_retries = max_retries
        self.passes = 0
        self._slots = asyncio.Semaphore(max_passes)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resubscriptions_counted = 0
        self._next_poll: datetime | None = None

    @classmethod
    def for_service(cls, runner: PassRunner, source: MailboxSource) -> NotifiedSync | None:
        feed = make_feed(runner.config, source, runner.clock)
        return cls(feed, runner) if feed is not None else None

    @property
    def fallback_interval(self) -> timedelta | None:
        minutes = self.runner.config.sync.fallback_interval_minutes
        return timedelta(minutes=minutes) if minutes > 0 else None

    async def run(self) -> None:
        """Until cancelled; raises what the feed raised (a bug: the supervisor restarts the service)."""
        feed = asyncio.ensure_future(self.feed.run(watched_folders(self.runner.config), self._on_change))
        if self.fallback_interval is not None:
            self._next_poll = self.clock.now() + self.fallback_interval
        try:
            while not feed.done():
                self._dispatch_due()
                await self._wait(feed)
            feed.result()
        finally:
            feed.cancel()
            # Passes in flight finish their transactions (the supervisor's stop deadline bounds this).
            await asyncio.gather(feed, *self._tasks, return_exceptions=True)

    # ---- notifications in

    def _on_change(self, change: FolderChanged) -> None:
        metrics.NOTIFICATIONS.labels(change.reason).inc()
        self.debouncer.add((change.mailbox.lower(), change.folder), self.clock.now(), change.reason)
        self._wake.set()

    def _count_resubscriptions(self, health: FeedHealth) -> None:
        fresh = health.resubscriptions - self._resubscriptions_counted
        if fresh > 0:
            metrics.RESUBSCRIPTIONS.labels(health.mode).inc(fresh)
            self._resubscriptions_counted = health.resubscriptions

    # ---- dispatching passes

    def _dispatch_due(self) -> None:
        now = self.clock.now()
        if self._next_poll is not None and now >= self._next_poll and self.fallback_interval is not None:
            for text in self.feed.health().fallback_folders:
                key = parse_folder_key(text)
                if key is not None:
                    self.debouncer.add(key, now, "poll")
            self._next_poll = now + self.fallback_interval
        due = self.debouncer.pop_due(now)
        if due:
            # Folders that would be due within the next quiet period ride along: one pass (and one run of
            # the after-pass steps) instead of a pass per folder when many trickle in, e.g. at start.
            due.update(self.debouncer.pop_due(now + timedelta(seconds=self.debouncer.policy.quiet_seconds)))
            task = asyncio.get_running_loop().create_task(self._pass(due), name="notified-sync-pass")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _wait(self, feed: asyncio.Future[None]) -> None:
        wake_at = min((t for t in (self.debouncer.next_due(), self._next_poll) if t is not None), default=None)
        self._wake.clear()
        waits: set[asyncio.Future[Any]] = {feed, asyncio.ensure_future(self._wake.wait())}
        if wake_at is not None:
            waits.add(asyncio.ensure_future(self.clock.sleep_until(wake_at)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits - {feed}:
                waiter.cancel()

    async def _pass(self, due: dict[FolderKey, Pending]) -> None:
        users = {u.mailbox.lower(): u for u in self.runner.config.users}
        folders: dict[str, set[Folder]] = {}
        for mailbox, folder in due:
            if mailbox in users:
                folders.setdefault(mailbox, set()).add(folder)
        if not folders:
            return
        async with self._slots:
            try:
                summary: PassSummary | None = await self.runner.sync_now(
                    [users[m] for m in folders], trigger="notify", folders=folders)
            except Exception as exc:  # e.g. the service is stopping: these folders wait for their retry
                log.warning("notified sync pass failed: %s", exc)
                summary = None
        self.passes += 1
        finished = self.clock.now()
        health = self.feed.health()
        self._count_resubscriptions(health)
        for key, pending in due.items():
            result = _result(summary, key) if summary is not None else None
            if result is not None and result.ok:
                if "event" in pending.reasons:
                    metrics.NOTIFICATION_LAG.labels(health.mode).observe((finished - pending.first).total_seconds())
            elif key[0] in users and pending.retries < self.max_retries:
                delay = timedelta(seconds=self.retry_seconds * 2 ** pending.retries)
                self.debouncer.add(key, finished, "retry", not_before=finished + delay, retries=pending.retries + 1)
                self._wake.set()

    # ---- health (for the sync service's status)

    def health(self) -> FeedHealth:
        health = self.feed.health()
        self._count_resubscriptions(health)
        return health

    def status(self) -> tuple[str, dict[str, Any]]:
        """One line and the JSON facts for `pbxsync status`."""
        h = self.health()
        age = "no event yet" if h.last_event_age_seconds is None else f"last event {h.last_event_age_seconds:.0f} s ago"
        line = f"notifications {h.mode}: {h.subscriptions_healthy}/{h.subscriptions_total} subscriptions healthy, {age}"
        if h.fallback_folders:
            line += f", {len(h.fallback_folders)} folder(s) on timed polling"
        data = {"mode": h.mode, "subscriptions_healthy": h.subscriptions_healthy,
                "subscriptions_total": h.subscriptions_total, "last_event_age_seconds": h.last_event_age_seconds,
                "fallback_folders": list(h.fallback_folders), "resubscriptions": h.resubscriptions,
                "detail": h.detail, "pending_folders": len(self.debouncer), "passes": self.passes}
        return line, data
