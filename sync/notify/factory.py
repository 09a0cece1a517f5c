"""Which change feed the configured backend brings (None: notifications off, or none for this backend).

Each backend registers its `FeedFactory` in `FEEDS` under its `[exchange] backend` name; a factory may
return None (e.g. a source it cannot watch). The daemon asks `make_feed` once per start of its sync service.
"""

from __future__ import annotations

from pbxsync.sync.config import Config
from pbxsync.sync.notify.base import ChangeFeed, FeedClock, FeedFactory
from pbxsync.sync.sources.base import MailboxSource


def _ews_feed(config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
    from pbxsync.sync.notify.ews_streaming import EwsStreamingFeed
    from pbxsync.sync.sources.ews import EwsSource

    return EwsStreamingFeed(source, clock) if isinstance(source, EwsSource) else None


FEEDS: dict[str, FeedFactory] = {"ews": _ews_feed}


def make_feed(config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
    if config.exchange.notifications == "off":
        return None
    factory = FEEDS.get(config.exchange.backend)
    return factory(config, source, clock) if factory is not None else None
