"""Graph webhooks: the subscriptions of every synced folder, kept alive, and what their notifications mean.

The rules are in `graph_subscriptions` (pure); this module does the requests and the waiting:
- At start: subscriptions left by an earlier run (same notification URL; their clientStates died with
  that process) are deleted, then one is created per folder, each followed by one delta round of the
  folder ("resubscribed"), so changes made while pbxsync was down arrive at once.
- Renewal (PATCH expirationDateTime) when due; a failed renewal is retried every RENEW_RETRY; a
  subscription Graph no longer knows (404), one that expired or one Graph removed is created anew and
  its folder synced ("resubscribed").
- A folder whose subscription cannot be created (e.g. the validation handshake fails: the reverse proxy
  is wrong) is polled like in polling mode, listed in `FeedHealth.fallback_folders`, and subscribed
  again after 1, 2, 4 ... 60 minutes.
- While `notification_listen` cannot be bound, every folder is polled and the bind retried likewise.
- At stop: the subscriptions are deleted (best effort, a few seconds at most; the next start removes
  what is left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from pbxsync.sync.config import ExchangeConfig
from pbxsync.sync.errors import SourceError
from pbxsync.sync.notify.base import FeedClock
from pbxsync.sync.notify.graph_poller import Emit, GraphPoller
from pbxsync.sync.notify.graph_polling import FolderKey
from pbxsync.sync.notify.graph_receiver import NotificationReceiver
from pbxsync.sync.notify.graph_subscriptions import (
    Action,
    Subscription,
    creation_body,
    due_for_renewal,
    granted_expiry,
    new_client_state,
    renew_at,
    renewal_body,
    subscription_id,
    tenant_guid,
    triage,
)
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.graph_client import GraphNotFoundError, GraphRequestError

log = logging.getLogger("pbxsync.exchange.graph.webhook")

CONCURRENCY = 8  # subscription requests at once (each creation waits for Graph's validation POST)
RENEW_RETRY = timedelta(minutes=5)
SUBSCRIBE_RETRY_FIRST = timedelta(minutes=1)
SUBSCRIBE_RETRY_MAX = timedelta(minutes=60)
SHUTDOWN_SECONDS = 5.0
MAX_LIST_PAGES = 50
SUBSCRIPTIONS_KEY = "subscriptions"  # the GraphClient limit key of requests not about one mailbox
_WARN_REASONS = ("clientState mismatch", "another tenant")


async def _bounded(work: Iterable[Awaitable[None]], limit: int = CONCURRENCY) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[None]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in work))


class GraphSubscriber:
    def __init__(self, exchange: ExchangeConfig, source: GraphSource, clock: FeedClock, poller: GraphPoller,
                 emit: Emit) -> None:
        self._url = exchange.notification_url
        self._tenant = tenant_guid(exchange.tenant_id)
        self._client = source.client
        self._clock = clock
        self._poller = poller
        self._emit = emit
        self.receiver = NotificationReceiver(exchange.notification_listen, urlsplit(self._url).path or "/",
                                             self.on_payload)
        self.subs: dict[str, Subscription] = {}
        self.by_folder: dict[FolderKey, str] = {}
        self.fallback: dict[FolderKey, datetime] = {}  # folder -> next attempt to subscribe it
        self._failures: dict[FolderKey, int] = {}
        self._renew_retry: dict[str, datetime] = {}
        self._actions: asyncio.Queue[tuple[Action, Subscription]] = asyncio.Queue()
        self.resubscriptions = 0
        self.ignored = 0

    # ---- the loop

    async def run(self, folders: Sequence[FolderKey]) -> None:
        await self._listen(folders)
        try:
            await self._sweep_stale()
            await self._subscribe(folders, initial=True)
            while True:
                await self._step()
        finally:
            await self._shutdown()

    async def _listen(self, folders: Sequence[FolderKey]) -> None:
        """Start the receiver; while its address cannot be bound (in use, not ours), poll every folder and
        try again after 1, 2, 4 ... 60 minutes."""
        delay = SUBSCRIBE_RETRY_FIRST
        while True:
            try:
                await self.receiver.start()
                return
            except OSError as exc:
                now = self._clock.now()
                until = now + delay
                log.error("graph webhook: cannot listen on %s (%s); polling every folder, trying again in %d min",
                          self.receiver.listen, exc.strerror or exc, delay.total_seconds() // 60)
                self.fallback.update({key: until for key in folders})
            while (now := self._clock.now()) < until:
                await self._poller.round(folders)
                due = self._poller.next_due(folders, now)
                wake = until if due is None else min(until, due)
                await self._clock.sleep(max(1.0, (wake - self._clock.now()).total_seconds()))
            delay = min(SUBSCRIBE_RETRY_MAX, delay * 2)

    async def _step(self) -> None:
        now = self._clock.now()
        due = [s for s in due_for_renewal(self.subs, now) if self._renew_retry.get(s.id, now) <= now]
        if due:
            await _bounded(self._renew(s) for s in due)
        for sub in [s for s in self.subs.values() if s.expires <= now]:
            log.warning("graph webhook: the subscription of %s %s expired; creating a new one", sub.mailbox,
                        sub.folder.value)
            self._forget(sub, retry_at=now)
        retry = [k for k, at in self.fallback.items() if at <= now]
        if retry:
            await self._subscribe(retry, initial=False)
        await self._poller.round(sorted(self.fallback))
        action = await self._next_action(self._next_deadline(self._clock.now()))
        if action is not None:
            await self._apply(*action)

    def _next_deadline(self, now: datetime) -> datetime | None:
        times = [max(renew_at(s), self._renew_retry.get(s.id, now)) for s in self.subs.values()]
        times += [s.expires for s in self.subs.values()]
        times += list(self.fallback.values())
        polled = self._poller.next_due(sorted(self.fallback), now)
        if polled is not None:
            times.append(polled)
        return min(times, default=None)

    async def _next_action(self, deadline: datetime | None) -> tuple[Action, Subscription] | None:
        """The next queued lifecycle action, or None when `deadline` came first."""
        getter = asyncio.ensure_future(self._actions.get())
        waits: set[asyncio.Future[object]] = {getter}  # type: ignore[arg-type]
        if deadline is not None:
            seconds = max(0.0, (deadline - self._clock.now()).total_seconds())
            waits.add(asyncio.ensure_future(self._clock.sleep(max(seconds, 0.001))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                if not waiter.done():
                    waiter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else None

    async def _apply(self, action: Action, sub: Subscription) -> None:
        key = (sub.mailbox, sub.folder)
        if action == "renew" and sub.id in self.subs:
            await self._renew(self.subs[sub.id])
        elif action == "recreate" and self.by_folder.get(key) == sub.id:
            log.info("graph webhook: Graph removed the subscription of %s %s; creating a new one", *_names(key))
            self._forget(sub, retry_at=None)
            await self._subscribe([key], initial=False)

    # ---- notifications (called by the receiver, in the event loop)

    def on_payload(self, payload: object) -> None:
        result = triage(payload, self.subs, self._tenant)
        if result.ignored:
            self.ignored += len(result.ignored)
            for reason, count in Counter(result.ignored).items():
                log.log(logging.WARNING if reason in _WARN_REASONS else logging.INFO,
                        "graph webhook: %d notifications ignored: %s", count, reason)
        for action, sub in result.actions:
            if action in ("changed", "missed"):
                self._emit(sub.mailbox, sub.folder, "event" if action == "changed" else "missed")
            else:
                self._actions.put_nowait((action, sub))

    # ---- requests

    async def _subscribe(self, keys: Sequence[FolderKey], *, initial: bool) -> None:
        failures: list[tuple[FolderKey, Exception]] = []
        url = self._client.url("/subscriptions")

        async def one(key: FolderKey) -> None:
            mailbox, folder = key
            now = self._clock.now()
            state = new_client_state()
            try:
                with self.receiver.validating():
                    answer = await self._client.request_json(mailbox, "POST", url, creation_body(
                        mailbox, folder, self._url, state, now))
                sub = Subscription(subscription_id(answer), mailbox, folder, state, now, granted_expiry(answer, now))
            except (SourceError, ValueError) as exc:
                count = self._failures[key] = self._failures.get(key, 0) + 1
                self.fallback[key] = now + min(SUBSCRIBE_RETRY_MAX, SUBSCRIBE_RETRY_FIRST * 2 ** (count - 1))
                failures.append((key, exc))
                return
            self.subs[sub.id] = sub
            self.by_folder[key] = sub.id
            self.fallback.pop(key, None)
            self._failures.pop(key, None)
            if not initial:
                self.resubscriptions += 1
            self._emit(mailbox, folder, "resubscribed")

        await _bounded(one(k) for k in keys)
        if failures:
            (mailbox, folder), first = failures[0]
            hint = ""
            if isinstance(first, GraphRequestError) and first.code == "ValidationError":
                hint = (f"; Graph could not validate {self._url}: check that the reverse proxy forwards it to "
                        "notification_listen (docs/operations.md)")
            log.warning("graph webhook: %d of %d subscriptions could not be created (e.g. %s %s: %s)%s; those "
                        "folders are polled until it works", len(failures), len(keys), mailbox, folder.value,
                        " ".join(str(first).split())[:200], hint)

    async def _renew(self, sub: Subscription) -> None:
        now = self._clock.now()
        url = self._client.url(f"/subscriptions/{quote(sub.id, safe='')}")
        try:
            answer = await self._client.request_json(sub.mailbox, "PATCH", url, renewal_body(now))
            expires = granted_expiry(answer, now)
        except GraphNotFoundError:
            log.info("graph webhook: the subscription of %s %s is gone; creating a new one", sub.mailbox,
                     sub.folder.value)
            self._forget(sub, retry_at=now)
            return
        except (SourceError, ValueError) as exc:
            self._renew_retry[sub.id] = now + RENEW_RETRY
            log.warning("graph webhook: renewing the subscription of %s %s failed (%s); trying again in %d min",
                        sub.mailbox, sub.folder.value, " ".join(str(exc).split())[:200],
                        RENEW_RETRY.total_seconds() // 60)
            return
        if sub.id in self.subs:
            self.subs[sub.id] = replace(sub, granted=now, expires=expires)
        self._renew_retry.pop(sub.id, None)

    def _forget(self, sub: Subscription, retry_at: datetime | None) -> None:
        """Drop a subscription that no longer works; with `retry_at`, the folder is subscribed again then
        (and polled meanwhile)."""
        self.subs.pop(sub.id, None)
        self._renew_retry.pop(sub.id, None)
        key = (sub.mailbox, sub.folder)
        if self.by_folder.get(key) == sub.id:
            del self.by_folder[key]
        if retry_at is not None:
            self.fallback[key] = retry_at

    async def _sweep_stale(self) -> None:
        """Delete subscriptions an earlier run left for our URL: their clientStates are unknown now."""
        url: str | None = self._client.url("/subscriptions")
        stale: list[str] = []
        try:
            for _ in range(MAX_LIST_PAGES):
                if url is None:
                    break
                page = await self._client.request_json(SUBSCRIPTIONS_KEY, "GET", url)
                value = page.get("value")
                for item in value if isinstance(value, list) else []:
                    if (isinstance(item, dict) and item.get("notificationUrl") == self._url
                            and isinstance(item.get("id"), str) and item["id"] not in self.subs):
                        stale.append(item["id"])
                link = page.get("@odata.nextLink")
                url = self._client.check_link(link, "nextLink") if link else None
        except SourceError as exc:
            log.info("graph webhook: could not list old subscriptions (%s); they expire by themselves",
                     " ".join(str(exc).split())[:200])
        if stale:
            await _bounded(self._delete(sid) for sid in stale)
            log.info("graph webhook: removed %d subscriptions left by an earlier run", len(stale))

    async def _delete(self, sid: str, key: str = SUBSCRIPTIONS_KEY) -> None:
        with contextlib.suppress(SourceError):  # gone already, or it expires by itself
            await self._client.request_json(key, "DELETE", self._client.url(f"/subscriptions/{quote(sid, safe='')}"))

    async def _shutdown(self) -> None:
        subs = list(self.subs.values())
        self.subs.clear()
        self.by_folder.clear()
        try:
            if subs:
                await asyncio.wait_for(_bounded(self._delete(s.id, s.mailbox) for s in subs), SHUTDOWN_SECONDS)
        except TimeoutError:
            log.info("graph webhook: %d subscriptions not deleted at stop; the next start removes them", len(subs))
        finally:
            await self.receiver.close()

    # ---- health

    def healthy(self, now: datetime) -> int:
        return sum(1 for s in self.subs.values() if s.expires > now)

    def detail(self, now: datetime, total: int) -> str:
        text = f"{self.healthy(now)}/{total} subscriptions to {self._url}"
        upcoming = min((renew_at(s) for s in self.subs.values()), default=None)
        if upcoming is not None:
            text += f", next renewal in {max(0.0, (upcoming - now).total_seconds()) / 3600:.1f} h"
        if self.fallback:
            text += f"; {len(self.fallback)} folders polled until subscribed ({self._poller.detail(now)})"
        if self.ignored:
            text += f"; {self.ignored} notifications ignored"
        return text


def _names(key: FolderKey) -> tuple[str, str]:
    return key[0], key[1].value
