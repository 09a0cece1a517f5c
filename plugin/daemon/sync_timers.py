"""Per-user sync timers and "Sync now", as one daemon service.

`interval_minutes` (0 = off) sets how often each user is synced. The first passes are staggered
evenly over one interval so a thousand users do not all hit Exchange at once; after that each user
is due every `interval` on that grid. The plan is APScheduler's (plugin.daemon.scheduler, on the
daemon's clock): one interval job per user, coalesced (runs missed while the daemon was suspended or a
pass ran long become one) with a misfire grace of half an interval (a run later than that is skipped:
the user's next one comes sooner). The users due together are synced in one pass, one pass at a time.
A pass for a user that is already being synced waits for it (the engine serialises per user), so a
timer and "Sync now" never overlap.
When the backend brings a change feed, `notifications` (plugin.daemon.notified_sync) also syncs each
folder seconds after Exchange reports a change; the timers are then the safety net.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.notified_sync import NotifiedSync, run_beside
from pbxsync.plugin.daemon.scheduler import ClockScheduler
from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.engine import PassSummary, SyncEngine
from pbxsync.sync.errors import UserError
from pbxsync.sync.model import Folder, utc_text
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.daemon.sync")

AfterPass = Callable[[PassSummary], Awaitable[None]]
SourceFactory = Callable[[Config], MailboxSource]
JOB_PREFIX = "sync-"  # + extension: the user's timed-pass job


def synced_users(config: Config) -> list[UserConfig]:
    return [u for u in config.users if u.sync_contacts or u.sync_calendar]


def staggered_schedule(extensions: Sequence[str], now: datetime, interval: timedelta) -> dict[str, datetime]:
    """When each user's first timed pass is due: evenly spread over one interval, first one now."""
    count = len(extensions)
    return {ext: now + interval * i / count for i, ext in enumerate(extensions)} if count else {}


def due_users(schedule: dict[str, datetime], now: datetime) -> list[str]:
    return [ext for ext, due in schedule.items() if due <= now]


class UnknownUserError(UserError):
    pass


class SyncService(Service):
    name = "sync"

    def __init__(self, config: Config, store: Store, clock: Clock, make_source: SourceFactory,
                 after_pass: list[AfterPass] | None = None, published: Slot[SyncService] | None = None) -> None:
        """`after_pass`: the steps after each pass, read at every pass and never copied: the daemon rebuilds
        this very list on reload (plugin.daemon.wiring.build_specs), so a step switched on or off, or built
        from the new config, takes effect at the next pass without restarting this service.
        `published`: where the running service is offered to parts that need a pass of some users."""
        super().__init__()
        self.published = published if published is not None else Slot()
        self.config = config
        self.store = store
        self.clock = clock
        self.make_source = make_source
        self.after_pass = after_pass if after_pass is not None else []
        self.engine: SyncEngine | None = None
        self.notifications: NotifiedSync | None = None
        self.scheduler = ClockScheduler(clock)
        self._due: set[str] = set()  # users whose timed pass APScheduler found due
        self.last_pass: dict[str, Any] | None = None
        self.passes = 0
        self.failed_step: str | None = None  # the after-sync step that failed in the last pass
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def interval(self) -> timedelta | None:
        minutes = self.config.sync.interval_minutes
        return timedelta(minutes=minutes) if minutes > 0 else None

    async def start(self) -> None:
        source = self.make_source(self.config)
        self.engine = SyncEngine(self.store, source, self.config)
        self.notifications = NotifiedSync.for_service(self, source)  # None: timed passes only
        interval = self.interval
        if interval is not None:
            first = staggered_schedule([u.extension for u in synced_users(self.config)], self.clock.now(), interval)
            for extension, due in first.items():
                self.scheduler.every(f"{JOB_PREFIX}{extension}", functools.partial(self._due.add, extension), due,
                                     interval, misfire_grace=interval / 2)
            self.scheduler.start()
        self.published.publish(self)

    @property
    def schedule(self) -> dict[str, datetime]:
        """When each user's next timed pass is due (empty: timer off)."""
        return {job.id.removeprefix(JOB_PREFIX): job.next_run_time for job in self.scheduler.get_jobs()}

    async def run(self) -> None:
        if self.notifications is not None:
            await run_beside(self._run_timers(), self.notifications.run())
        else:
            await self._run_timers()

    async def _run_timers(self) -> None:
        if not self.scheduler.running:
            await self._stopped.wait()  # timer off: only "Sync now" runs passes
            return
        while not self._stopped.is_set():
            next_due = self.scheduler.run_due()
            if self._due:
                users = [u for u in synced_users(self.config) if u.extension in self._due]
                self._due.clear()
                if users:
                    await self.sync_now(users, trigger="timer")
                continue  # slots that came while the pass ran are due now
            if await self._unless_stopped(self.scheduler.wait(next_due)):
                return

    async def _unless_stopped(self, waiting: Awaitable[None]) -> bool:
        """Wait for `waiting` or stop(), whichever comes first; True if stop() did."""
        waiter = asyncio.ensure_future(waiting)
        stopper = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        return self._stopped.is_set()

    def resolve_users(self, extension: str | None) -> list[UserConfig]:
        if extension is None:
            return synced_users(self.config)
        user = self.config.user_by_extension(extension)
        if user is None:
            raise UnknownUserError(f"no user with extension {extension} in the config")
        return [user]

    async def sync_now(self, users: Sequence[UserConfig] | None = None, trigger: str = "manual",
                       folders: Mapping[str, Collection[Folder]] | None = None) -> PassSummary:
        """One pass over `users` (all synced users if None; only `folders` of them if given: mailbox ->
        folders); hooks (bookings, AUTOCALL) run after it."""
        if self.engine is None:
            raise RuntimeError("the sync service is not started")
        chosen = list(users) if users is not None else synced_users(self.config)
        self._running += 1
        self._idle.clear()
        started = time.monotonic()
        try:
            summary = await self.engine.sync_all(self.clock.now(), chosen, folders)
            failed_step = None
            for hook in list(self.after_pass):  # as they are now: a reload during the pass rebuilds the list
                try:
                    await hook(summary)
                except Exception as exc:  # a failing hook is logged; the synced data stays
                    metrics.ERRORS.labels("internal").inc()
                    log.exception("after-sync step %s failed", getattr(hook, "__qualname__", hook))
                    failed_step = f"{getattr(hook, '__qualname__', 'step')}: {type(exc).__name__}: {exc}"[:200]
            self.failed_step = failed_step
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()
        elapsed = time.monotonic() - started
        self._record(summary, trigger, elapsed)
        return summary

    def _record(self, summary: PassSummary, trigger: str, elapsed: float) -> None:
        failed = [u for u in summary.users if not u.ok]
        metrics.SYNC_PASSES.labels(trigger, "ok" if not failed else "error").inc()
        metrics.SYNC_DURATION.labels(trigger).observe(elapsed)
        for user in summary.users:
            for folder, result in (("contacts", user.contacts), ("calendar", user.calendar)):
                if result is None:
                    continue
                metrics.FOLDER_SYNCS.labels(folder, "ok" if result.ok else "error").inc()
                if result.ok:
                    for change, n in (("added", result.added), ("updated", result.updated),
                                      ("deleted", result.deleted)):
                        if n:
                            metrics.ITEMS_CHANGED.labels(folder, change).inc(n)
                else:
                    metrics.ERRORS.labels(result.error_kind or "internal").inc()
        self.passes += 1
        self.last_pass = {"at": utc_text(summary.started), "trigger": trigger, "users": len(summary.users),
                          "failed": [u.extension for u in failed], "seconds": round(elapsed, 3)}
        log.info("sync pass (%s): %d users, %d failed, %.1f s", trigger, len(summary.users), len(failed), elapsed,
                 extra={"trigger": trigger})

    async def stop(self) -> None:
        self.published.withdraw(self)
        if self.scheduler.running:
            self.scheduler.shutdown()
        self._stopped.set()
        await self._idle.wait()  # in-flight passes finish their transactions; the supervisor bounds this
        if self.engine is not None:
            await self.engine.source.close()

    def health(self) -> Health:
        data: dict[str, Any] = {"passes": self.passes, "last_pass": self.last_pass,
                                "interval_minutes": self.config.sync.interval_minutes,
                                "users": len(synced_users(self.config)), "running": self._running}
        schedule = self.schedule
        if schedule:
            data["next_due"] = utc_text(min(schedule.values()))
            data["behind"] = len(due_users(schedule, self.clock.now()))  # slots passed while a pass still runs
        notified = self.notifications.status() if self.notifications is not None else None
        if notified is not None:
            data["notifications"] = notified[1]
        if self.last_pass is None:
            detail = "no pass yet" + (f"; next at {data['next_due']}" if schedule else "")
            return Health(True, detail + (f"; {notified[0]}" if notified is not None else ""), data)
        failed = self.last_pass["failed"]
        detail = f"last pass {self.last_pass['at']}: {self.last_pass['users']} users"
        detail += f", failed: {', '.join(failed)}" if failed else ", all ok"
        if notified is not None:
            detail += f"; {notified[0]}"
        if self.failed_step is not None:  # bookings or the phonebook are stale although the sync worked
            data["failed_step"] = self.failed_step
            return Health(False, f"{detail}; after-sync step failed: {self.failed_step}", data)
        return Health(not failed, detail, data)
