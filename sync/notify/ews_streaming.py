"""EWS streaming notifications as a `ChangeFeed`: which synced folders changed, seconds after they did.

Lifecycle (the rules are in sync.notify.ews_plan, the exchangelib work in sync.notify.ews_wire):
1. Resolve each mailbox's exchangelib Account through the EwsSource (its endpoint and owner decide the
   group) and the ids of its synced folders. A mailbox that cannot be resolved is retried with back-off.
2. Plan connection groups; one task per group subscribes its mailboxes (anchor first: its response
   carries the affinity cookie), then holds one GetStreamingEvents connection for all of them, ends it and
   opens the next before the connection timeout, and turns every event into `FolderChanged(..., "event")`.
3. Every (re)created subscription is followed by `FolderChanged(..., "resubscribed")` for its folders, so
   the daemon syncs them once: whatever changed while no subscription watched is picked up (the first
   subscription too: the timed passes may be an hour apart).
4. A subscription Exchange no longer knows is re-created; a failed connection is retried with back-off; a
   group without a connection for longer than a subscription lives re-creates all of its subscriptions.

Threads: exchangelib blocks, so each call runs in a thread of its own (a daemon thread: a stream being
torn down never holds up the process's exit). At most `parallel_subscribes` short calls and one stream
per group run at once, and the groups are capped (`max_connections`), so the threads are bounded. None of
them uses the EwsSource's HTTP sessions or its per-mailbox semaphores: a stream held for minutes never
starves the sync. All feed state lives on the event loop; threads only report back through it.

Subscriptions left at stop are unsubscribed best-effort in the background; those that are not expire on
Exchange's side about 30 minutes later.

Over 400 lines on purpose: resolving, grouping, subscribing, streaming and recovering all work on one state
(the mailboxes and their groups, owned by the event loop); the rules are pure in ews_plan, the IO in ews_wire.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pbxsync.sync.errors import SourceError
from pbxsync.sync.model import Folder
from pbxsync.sync.notify import ews_wire
from pbxsync.sync.notify.base import FeedClock, FeedHealth, FolderChanged, folder_key
from pbxsync.sync.notify.ews_plan import (
    Attempts,
    ConnectionGroup,
    StreamingPolicy,
    Target,
    after_failure,
    after_subscribed,
    after_success,
    folders_of_event,
    next_wakeup,
    plan_groups,
    presumed_expired,
    renew_at,
)
from pbxsync.sync.notify.threads import in_thread
from pbxsync.sync.sources.ews import EwsSource

log = logging.getLogger("pbxsync.notify.ews")
MODE = "ews-streaming"
_FOLDER_ORDER = (Folder.CALENDAR, Folder.CONTACTS)


@dataclass
class _Box:
    """One mailbox: its folders, account, subscription and retry state (event-loop state only)."""

    mailbox: str
    folders: tuple[Folder, ...]
    account: Any = None
    folder_ids: dict[str, Folder] = field(default_factory=dict)  # Exchange folder id -> synced folder
    exchange_folders: list[Any] = field(default_factory=list)  # what the subscription covers
    stale: bool = False  # the folder tree changed: read it again before the next subscription
    refreshing: bool = False  # re-subscribed for a new folder set, not because the subscription was lost
    subscription_id: str = ""
    attempts: Attempts = field(default_factory=Attempts)
    subscribed_once: bool = False
    next_reason: str = "resubscribed"  # what the next successful subscription tells the daemon
    error: str = ""
    over_limit: bool = False  # its group would exceed max_connections: timed polling only

    def lose(self, reason: str) -> None:
        self.subscription_id = ""
        self.next_reason = reason


@dataclass
class _Group:
    plan: ConnectionGroup
    boxes: list[_Box]
    sessions: ews_wire.GroupSessions
    attempts: Attempts = field(default_factory=Attempts)  # of the connection
    connected: bool = False
    heard: bool = False  # the current connection delivered at least one message
    last_connected: datetime | None = None
    error: str = ""
    handle: ews_wire.StreamHandle | None = None

    def box_of(self, subscription_id: str) -> _Box | None:
        return next((b for b in self.boxes if b.subscription_id == subscription_id), None)


class EwsStreamingFeed:
    """The EWS backend's ChangeFeed. One instance runs once (`run` until cancelled)."""

    def __init__(self, source: EwsSource, clock: FeedClock, policy: StreamingPolicy | None = None,
                 resolve_concurrency: int = 8) -> None:
        self.source = source
        self.clock = clock
        self.policy = policy or StreamingPolicy()
        self._resolve_limit = asyncio.Semaphore(resolve_concurrency)
        self._boxes: dict[str, _Box] = {}
        self._groups: list[_Group] = []
        self._notify: Callable[[FolderChanged], None] = lambda change: None
        self._last_event: datetime | None = None
        self._resubscriptions = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- ChangeFeed

    async def run(self, folders: Sequence[tuple[str, Folder]], notify: Callable[[FolderChanged], None]) -> None:
        wanted: dict[str, set[Folder]] = {}
        for mailbox, folder in folders:
            wanted.setdefault(mailbox.lower(), set()).add(folder)
        self._boxes = {m: _Box(m, tuple(f for f in _FOLDER_ORDER if f in fs)) for m, fs in sorted(wanted.items())}
        self._notify = notify
        try:
            await self._resolve_loop()
            if self._tasks:
                await asyncio.gather(*self._tasks)
            else:
                await asyncio.Event().wait()  # nothing to watch: idle until cancelled
        finally:
            for task in self._tasks:
                task.cancel()
            self._close_groups()

    def health(self) -> FeedHealth:
        now = self.clock.now()
        healthy = sum(1 for g in self._groups if g.connected and not g.attempts.fallback
                      for b in g.boxes if b.subscription_id)
        errors = [g.error for g in self._groups if g.error] + [b.error for b in self._boxes.values() if b.error]
        age = (now - self._last_event).total_seconds() if self._last_event is not None else None
        detail = f"{len(self._groups)} connection(s)"
        if errors:
            detail += f"; last error: {errors[-1]}"
        return FeedHealth(MODE, healthy, len(self._boxes), age, self._fallback_folders(), self._resubscriptions,
                          detail)

    def _fallback_folders(self) -> tuple[str, ...]:
        group_down = {b.mailbox for g in self._groups if g.attempts.fallback for b in g.boxes}
        return tuple(folder_key(b.mailbox, f) for b in self._boxes.values()
                     if b.attempts.fallback or b.over_limit or b.mailbox in group_down for f in b.folders)

    # ---- resolving mailboxes and planning groups

    async def _resolve_loop(self) -> None:
        while True:
            now = self.clock.now()
            pending = [b for b in self._boxes.values() if b.account is None and not b.over_limit]
            due = [b for b in pending if b.attempts.due(now)]
            if due:
                await asyncio.gather(*(self._resolve(b) for b in due))
                self._start_groups([b for b in due if b.account is not None])
            waiting = [b.attempts.retry_at for b in self._boxes.values() if b.account is None and not b.over_limit]
            wake = next_wakeup(waiting)
            if not waiting:
                return
            if wake is not None:
                await self._sleep_until(wake)

    async def _resolve(self, box: _Box) -> None:
        async with self._resolve_limit:
            try:
                account = await self.source.account(box.mailbox)
                box.folder_ids, box.exchange_folders = await in_thread(ews_wire.watched_folders, account,
                                                                       box.folders)
                box.account = account
                box.error = ""
            except Exception as exc:
                self._box_failed(box, exc if isinstance(exc, SourceError) else
                                 ews_wire.describe(exc, box.mailbox))

    def _start_groups(self, boxes: list[_Box]) -> None:
        targets = [Target(b.mailbox, b.folders, *ews_wire.owner_of(b.account)) for b in boxes]
        for plan in plan_groups(targets, self.policy.max_per_connection):
            members = [self._boxes[t.mailbox] for t in plan.targets]
            if len(self._groups) >= self.policy.max_connections:
                for box in members:
                    box.over_limit = True
                    box.error = (f"EWS {box.mailbox}: more than {self.policy.max_connections} streaming connections "
                                 "would be needed (without impersonation each user needs one): timed polling")
                log.warning("EWS streaming: %d mailbox(es) stay on timed polling: %s", len(members), members[0].error)
                continue
            anchor = self._boxes[plan.anchor]
            group = _Group(plan, members, ews_wire.GroupSessions(
                anchor.account.protocol, ews_wire.Affinity(plan.anchor), self.policy.parallel_subscribes))
            self._groups.append(group)
            task = asyncio.get_running_loop().create_task(self._run_group(group), name=f"ews-stream-{plan.anchor}")
            self._tasks.add(task)

    # ---- one connection group

    async def _run_group(self, group: _Group) -> None:
        while True:
            try:
                await self._group_round(group)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in one group must not stop the others: log, back off, go on
                log.exception("EWS streaming: group of %s failed", group.plan.anchor)
                self._connection_failed(group, f"internal error: {type(exc).__name__}")
                await self._sleep_until(group.attempts.retry_at or self.clock.now())

    async def _group_round(self, group: _Group) -> None:
        now = self.clock.now()
        if not group.connected and presumed_expired(group.last_connected, now, self.policy):
            log.info("EWS streaming: no connection for %s since %s: re-creating its subscriptions",
                     group.plan.anchor, group.last_connected)
            for box in group.boxes:
                if box.subscription_id:
                    box.lose("resubscribed")
            group.last_connected = None
        await self._subscribe_due(group)
        live = [b for b in group.boxes if b.subscription_id]
        now = self.clock.now()
        if live and group.attempts.due(now):
            await self._stream_once(group, live)
            return
        wake = next_wakeup([group.attempts.retry_at if live else None,
                            *(b.attempts.retry_at for b in group.boxes if not b.subscription_id)])
        await self._sleep_until(wake or now)

    async def _subscribe_due(self, group: _Group) -> None:
        due = [b for b in group.boxes if not b.subscription_id and b.attempts.due(self.clock.now())]
        if not due:
            return
        if not group.sessions.affinity.cookie:  # the anchor (first: sorted) alone, for the group's cookie
            await self._subscribe(group, due.pop(0))
        limit = asyncio.Semaphore(self.policy.parallel_subscribes)

        async def one(box: _Box) -> None:
            async with limit:
                await self._subscribe(group, box)

        await asyncio.gather(*(one(b) for b in due))

    async def _subscribe(self, group: _Group, box: _Box) -> None:
        try:
            if box.stale:
                box.folder_ids, box.exchange_folders = await in_thread(ews_wire.watched_folders, box.account,
                                                                       box.folders)
                box.stale = False
            box.subscription_id = await in_thread(ews_wire.subscribe, box.account, box.exchange_folders,
                                                  group.sessions)
        except Exception as exc:
            self._box_failed(box, ews_wire.describe(exc, box.mailbox))
            return
        if box.attempts.fallback or box.error:
            log.info("EWS streaming: %s is watched again", box.mailbox)
        box.attempts = after_subscribed(box.attempts)
        box.error = ""
        if box.subscribed_once and not box.refreshing:
            self._resubscriptions += 1
        box.subscribed_once, box.refreshing = True, False
        for folder in box.folders:
            self._notify(FolderChanged(box.mailbox, folder, box.next_reason))
        box.next_reason = "resubscribed"

    async def _stream_once(self, group: _Group, live: list[_Box]) -> None:
        loop = asyncio.get_running_loop()
        handle = ews_wire.StreamHandle()
        group.handle = handle
        ids = [b.subscription_id for b in live]

        def on_event(subscription_id: str, folder_ids: tuple[str, ...], structural: bool) -> None:
            loop.call_soon_threadsafe(self._on_event, group, subscription_id, folder_ids, structural)

        def on_message(ok: bool) -> None:
            loop.call_soon_threadsafe(self._on_message, group, ok)

        # The connection impersonates a mailbox of the group that has a subscription (the anchor while it
        # has one), which also charges the connection to that mailbox's budget, not the service account's.
        group.heard = False
        stream = in_thread(ews_wire.stream, live[0].account, ids, self.policy.connection_minutes,
                           group.sessions, handle, on_event, on_message)
        # Renewed before Exchange's timeout, or earlier when a mailbox waiting to be (re)subscribed is due:
        # a connection's subscription ids are fixed, so adding one means opening the next connection.
        renewal = renew_at(self.clock.now(), self.policy)
        waiting = next_wakeup(b.attempts.retry_at for b in group.boxes if not b.subscription_id)
        renew: asyncio.Future[Any] = asyncio.ensure_future(self._sleep_until(min(renewal, waiting or renewal)))
        try:
            await asyncio.wait([stream, renew], return_when=asyncio.FIRST_COMPLETED)
            renewed = not stream.done()
            if renewed:
                handle.abort()
            end = await stream
        finally:
            renew.cancel()
            if not stream.done():
                handle.abort()  # cancelled: the thread ends on its own, promptly
            group.handle = None
        if end.kind == "aborted" and renewed:
            end = ews_wire.StreamEnd("closed")
        if end.kind == "closed" and not group.heard:  # closed before saying anything: no working connection
            end = ews_wire.StreamEnd("error", message=f"EWS {group.plan.anchor}: the streaming connection "
                                     "ended without a message")
        self._after_stream(group, end)

    def _after_stream(self, group: _Group, end: ews_wire.StreamEnd) -> None:
        now = self.clock.now()
        if end.kind in ("closed", "aborted"):
            group.attempts = after_success(group.attempts)
            group.error = ""
            group.last_connected = now
            for box in group.boxes:
                if box.subscription_id:
                    box.attempts = after_success(box.attempts)
            return
        group.connected = False
        if end.kind == "lost":
            group.last_connected = now  # the connection itself worked
            reason = "missed" if end.code == "ErrorMissedNotificationEvents" else "resubscribed"
            for box in group.boxes:
                if box.subscription_id and box.subscription_id in end.lost_ids:
                    log.info("EWS streaming: the subscription of %s is gone (%s); re-creating it",
                             box.mailbox, end.code)
                    box.lose(reason)
                    box.attempts = after_failure(box.attempts, now, self.policy)
                    if box.attempts.fallback:
                        box.error = end.message
                        log.warning("EWS streaming: %s keeps losing its subscription; its folders fall back to "
                                    "timed polling (next try in %.0f s)", box.mailbox,
                                    self.policy.fallback_retry_seconds)
            return
        self._connection_failed(group, end.message or end.code)

    def _connection_failed(self, group: _Group, message: str) -> None:
        group.connected = False
        was_fallback = group.attempts.fallback
        group.attempts = after_failure(group.attempts, self.clock.now(), self.policy)
        group.error = message
        if group.attempts.fallback and not was_fallback:
            log.warning("EWS streaming: the connection for %d mailbox(es) of %s failed %d times (%s); they fall "
                        "back to timed polling; streaming is tried again every %.0f s", len(group.boxes),
                        group.plan.anchor, group.attempts.failures, message, self.policy.fallback_retry_seconds)
        else:
            log.info("EWS streaming: connection of %s failed (%s); retrying", group.plan.anchor, message)

    def _box_failed(self, box: _Box, error: object) -> None:
        was_fallback = box.attempts.fallback
        box.attempts = after_failure(box.attempts, self.clock.now(), self.policy)
        box.error = str(error)
        if box.attempts.fallback and not was_fallback:
            log.warning("EWS streaming: %s; its folders fall back to timed polling (next try in %.0f s)",
                        box.error, self.policy.fallback_retry_seconds)
        else:
            log.info("EWS streaming: %s (attempt %d)", box.error, box.attempts.failures)

    # ---- called on the loop by the stream thread

    def _on_message(self, group: _Group, ok: bool) -> None:
        group.heard = True
        if not ok:
            return  # an error message: the stream ends with it (see _after_stream)
        if not group.connected and group.attempts.failures:
            log.info("EWS streaming: connection of %s works again", group.plan.anchor)
            group.attempts = after_success(group.attempts)  # Exchange streams again: the connection is up
            group.error = ""
        group.connected = True
        group.last_connected = self.clock.now()

    def _on_event(self, group: _Group, subscription_id: str, folder_ids: tuple[str, ...], structural: bool) -> None:
        box = group.box_of(subscription_id)
        if box is None:
            return  # a subscription we replaced meanwhile
        self._last_event = self.clock.now()
        box.attempts = after_success(box.attempts)
        changed = folders_of_event(folder_ids, box.folder_ids, box.folders)
        for folder in changed:
            self._notify(FolderChanged(box.mailbox, folder, "event"))
        if structural and Folder.CONTACTS in changed:
            self._refresh(group, box)

    def _refresh(self, group: _Group, box: _Box) -> None:
        """A folder appeared, went or moved below Contacts: subscribe again to the folders a contacts pass
        now reads (a subscription covers its own folders, not new ones below them). The old subscription
        is dropped at Exchange in the background; the group's connection re-opens with the new one."""
        log.info("EWS streaming: the contact folders of %s changed; subscribing to them anew", box.mailbox)
        old = box.subscription_id
        box.lose("resubscribed")
        box.stale = box.refreshing = True
        threading.Thread(target=ews_wire.unsubscribe_all, args=([(box.account, old)], group.sessions, False),
                         name="pbxsync-ews-unsubscribe", daemon=True).start()
        if group.handle is not None:
            group.handle.abort()

    # ---- helpers

    async def _sleep_until(self, when: datetime) -> None:
        await self.clock.sleep(max(0.0, (when - self.clock.now()).total_seconds()))

    def _close_groups(self) -> None:
        for group in self._groups:
            if group.handle is not None:
                group.handle.abort()
            leftovers = [(b.account, b.subscription_id) for b in group.boxes if b.subscription_id]
            group.connected = False
            threading.Thread(target=ews_wire.unsubscribe_all, args=(leftovers, group.sessions),
                             name="pbxsync-ews-unsubscribe", daemon=True).start()

