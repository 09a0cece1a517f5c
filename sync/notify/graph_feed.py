"""The Microsoft Graph change feed: webhooks when `[exchange] notification_url` is set, else delta polling.

Either way the feed only says which folder changed; the daemon answers with the normal incremental sync
of that folder. Webhooks (`graph_webhook`) need a public HTTPS URL Graph can POST to; behind NAT,
polling (`graph_poller`) asks each folder's deltaLink whether anything changed, in `$batch` calls:
calendars every `poll_seconds`, contacts every `contacts_poll_seconds`.

`make_graph_feed` is the Graph backend's `FeedFactory` (sync.notify.base).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pbxsync.sync.config import Config, ExchangeConfig
from pbxsync.sync.model import Folder
from pbxsync.sync.notify.base import ChangeFeed, FeedClock, FeedHealth, FolderChanged, folder_key
from pbxsync.sync.notify.graph_poller import GraphPoller, age_seconds
from pbxsync.sync.notify.graph_polling import FolderKey, PollSchedule
from pbxsync.sync.notify.graph_webhook import GraphSubscriber
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.graph import GraphSource


class GraphChangeFeed:
    """A `ChangeFeed` for one Graph tenant. `run` until cancelled; `health` at any time."""

    def __init__(self, exchange: ExchangeConfig, source: GraphSource, clock: FeedClock) -> None:
        self._clock = clock
        self._notify: Callable[[FolderChanged], None] | None = None
        self._folders: list[FolderKey] = []
        self.last_event: datetime | None = None
        self.emitted = 0
        schedule = PollSchedule(float(exchange.poll_seconds), float(exchange.contacts_poll_seconds))
        self.poller = GraphPoller(source, clock, schedule, self._emit)
        self.subscriber = (GraphSubscriber(exchange, source, clock, self.poller, self._emit)
                           if exchange.notification_url else None)

    @property
    def mode(self) -> str:
        return "graph-webhook" if self.subscriber is not None else "graph-polling"

    async def run(self, folders: Sequence[tuple[str, Folder]], notify: Callable[[FolderChanged], None]) -> None:
        self._folders = sorted({(mailbox.lower(), folder) for mailbox, folder in folders})
        self._notify = notify
        if self.subscriber is not None:
            await self.subscriber.run(self._folders)
            return
        while True:
            await self.poller.round(self._folders)
            now = self._clock.now()
            due = self.poller.next_due(self._folders, now)
            if due is None:  # nothing is polled (both intervals 0): nothing to do but wait to be cancelled
                await self._clock.sleep(86400.0)
                continue
            await self._clock.sleep(max(1.0, (due - now).total_seconds()))

    def _emit(self, mailbox: str, folder: Folder, reason: str) -> None:
        if reason in ("event", "poll"):
            self.last_event = self._clock.now()
        self.emitted += 1
        if self._notify is not None:
            self._notify(FolderChanged(mailbox, folder, reason))

    def health(self) -> FeedHealth:
        now = self._clock.now()
        age = age_seconds(now, self.last_event)
        if self.subscriber is None:
            return FeedHealth(self.mode, 0, 0, age, (), 0,
                              f"{len(self._folders)} folders: {self.poller.detail(now)}")
        sub = self.subscriber
        return FeedHealth(self.mode, sub.healthy(now), len(self._folders), age,
                          tuple(folder_key(*k) for k in sorted(sub.fallback)), sub.resubscriptions,
                          sub.detail(now, len(self._folders)))


def make_graph_feed(config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
    """The Graph backend's change feed, or None when it has nothing to do (not Graph, or no webhook URL
    and both polling intervals 0)."""
    exchange = config.exchange
    if exchange.backend != "graph" or not isinstance(source, GraphSource):
        return None
    if not exchange.notification_url and exchange.poll_seconds <= 0 and exchange.contacts_poll_seconds <= 0:
        return None
    return GraphChangeFeed(exchange, source, clock)
