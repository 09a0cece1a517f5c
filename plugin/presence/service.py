"""Keeps every user's Asterisk device and presence state in step with their calendar.

Scheduled, not polled: one alarm on the daemon's clock (plugin.autocall.alarms) rings at the next instant
any user's state changes (plugin.presence.state.next_change); then every user's state is computed for that
instant and only what differs from what Asterisk was last told is sent, all users at once (bounded), so a
thousand meetings starting at 09:00 are a thousand pairs of Setvar at 09:00. After each sync pass that
changed a calendar the items are re-read from SQLite and the same happens at once (a cancelled meeting
frees its people immediately). At start, and after every AMI (re)login, every user's state is sent again:
what Asterisk holds is not known then (rebuilt from SQLite, never from memory). A user who opted out
(`presence = false`) is set free once at start, so a BLF key is never left busy by an earlier setting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pbxsync.plugin import metrics
from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.autocall.alarms import Alarms
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.plugin.daemon.sync_timers import AfterPass
from pbxsync.plugin.presence.asterisk import AsteriskPresence, asterisk_presence, setvar_actions
from pbxsync.plugin.presence.calendar import PresenceSettings, load_items
from pbxsync.plugin.presence.state import FREE, BusyItem, UserState, next_change, state_at
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.errors import PbxError, StoreError, ValidationError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.presence")

ALARM = "presence-next"
MAX_IN_FLIGHT = 400  # Setvar actions outstanding at once on the one AMI link


@dataclass
class PresenceHealth:
    users: int
    busy: int
    next_change: str  # ISO instant, "" when nothing is scheduled
    unsent: int  # users whose current state Asterisk has not confirmed yet
    ami_connected: bool
    last_error: str


class PresenceService:
    def __init__(self, store: Store, client: AmiClient, settings: PresenceSettings, clock: Clock) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.clock = clock
        self.alarms = Alarms(clock)
        self.sent: dict[str, AsteriskPresence] = {}  # extension -> what Asterisk confirmed last
        self.states: dict[str, UserState] = {}
        self._items: dict[str, list[BusyItem]] = {}
        self._lock = asyncio.Lock()
        self._limit = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self.last_error = ""  # the latest refusal or link error, one line

    async def start(self) -> None:
        self._unsubscribe = self.client.on_connect(self._on_login)
        await self.refresh(resend=True)
        self._release_task = asyncio.get_running_loop().create_task(self._release(), name="presence-release")

    async def _release(self) -> None:
        """Set the opted-out users free once, as soon as the link allows (then they are never touched)."""
        free = asterisk_presence(FREE, self.clock.now(), self.settings.templates, self.settings.zone)
        pending = list(self.settings.released)
        while pending:
            await self.client.wait_connected()
            results = await asyncio.gather(*(self._send(ext, free) for ext in pending))
            pending = [ext for ext, ok in zip(pending, results, strict=True) if not ok]
            for ext in self.settings.released:
                self.sent.pop(ext, None)  # not ours to report on
            if pending:
                await self.clock.sleep(5)  # refused while connected (or the link dropped): try again shortly

    async def stop(self) -> None:
        if self._release_task is not None:
            self._release_task.cancel()
            await asyncio.gather(self._release_task, return_exceptions=True)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.alarms.close()
        metrics.PRESENCE_BUSY_USERS.set(0)  # presence switched off (or restarting): nobody is shown busy by it
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def _on_login(self) -> None:
        task = asyncio.get_running_loop().create_task(self.refresh(resend=True), name="presence-resend")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh(self, *, resend: bool = False) -> None:
        """Re-read the calendar from SQLite, send what changed (everything with `resend`), re-arm."""
        async with self._lock:
            now = self.clock.now()
            mailboxes = {u.mailbox for u in self.settings.users}
            try:
                self._items = await load_items(self.store, mailboxes, now)
            except StoreError as exc:
                log.error("presence: cannot read the calendar: %s", exc)
                return
            if resend:
                self.sent.clear()
            await self._apply()

    async def _tick(self) -> None:
        async with self._lock:
            await self._apply()

    async def _apply(self) -> None:
        now = self.clock.now()
        wanted: list[tuple[str, AsteriskPresence]] = []
        for user in self.settings.users:
            state = state_at(self._items.get(user.mailbox, ()), now, self.settings.busy_statuses)
            self.states[user.extension] = state
            presence = asterisk_presence(state, now, self.settings.templates, self.settings.zone)
            if self.sent.get(user.extension) != presence:
                wanted.append((user.extension, presence))
        metrics.PRESENCE_BUSY_USERS.set(sum(s.busy for s in self.states.values()))
        if wanted:
            results = await asyncio.gather(*(self._send(ext, p) for ext, p in wanted))
            failed = results.count(False)
            if failed:
                log.warning("presence: %d of %d state update(s) not sent (%s); sent again after the next AMI "
                            "login", failed, len(wanted), self.last_error)
            else:
                log.info("presence: %d state update(s) sent", len(wanted))
        self._arm(now)

    async def _send(self, extension: str, presence: AsteriskPresence) -> bool:
        self.sent.pop(extension, None)
        try:
            async with self._limit:
                await asyncio.gather(*(self.client.action("Setvar", headers)
                                       for headers in setvar_actions(extension, presence)))
        except (PbxError, ValidationError) as exc:
            self.last_error = " ".join(str(exc).split())[:200]
            log.debug("presence: %s not updated: %s", extension, exc)
            return False
        self.sent[extension] = presence
        return True

    def _arm(self, at: datetime) -> None:
        upcoming = [t for u in self.settings.users
                    if (t := next_change(self._items.get(u.mailbox, ()), at, self.settings.busy_statuses)) is not None]
        if upcoming:
            self.alarms.set(ALARM, min(upcoming), self._tick)
        else:
            self.alarms.cancel(ALARM)

    def health(self) -> PresenceHealth:
        pending = self.alarms.pending().get(ALARM)
        return PresenceHealth(len(self.settings.users), sum(s.busy for s in self.states.values()),
                              pending.isoformat() if pending else "",
                              sum(1 for u in self.settings.users if u.extension not in self.sent),
                              self.client.connected, self.last_error)


class PresenceAdapter(Service):
    """PresenceService as a daemon service; re-read after every sync pass that changed a calendar."""

    name = "presence"

    def __init__(self, store: Store, client: AmiClient, settings: PresenceSettings, clock: Clock,
                 published: Slot[PresenceService]) -> None:
        super().__init__()
        self.published = published
        self.inner = PresenceService(store, client, settings, clock)

    async def start(self) -> None:
        await self.inner.start()
        self.published.publish(self.inner)

    async def stop(self) -> None:
        self.published.withdraw(self.inner)
        await self.inner.stop()
        await super().stop()

    def health(self) -> Health:
        h = self.inner.health()
        data = {"users": h.users, "busy": h.busy, "next_change": h.next_change or None, "unsent": h.unsent,
                "ami_connected": h.ami_connected, "last_error": h.last_error or None}
        detail = f"{h.users} user(s), {h.busy} busy, next change {h.next_change or 'none scheduled'}"
        if not h.ami_connected or h.unsent:
            why = "waiting for the AMI link" if not h.ami_connected else h.last_error or "refused"
            return Health(False, f"{detail}; {h.unsent} not sent yet ({why})", data)
        return Health(True, detail, data)


def presence_refresh_hook(presence: Slot[PresenceService]) -> AfterPass:
    async def refresh_presence_after_pass(summary: PassSummary) -> None:
        service = presence.value
        if service is not None and summary.calendar_changed:
            await service.refresh()

    return refresh_presence_after_pass

