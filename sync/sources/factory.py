"""Builds the configured Exchange source and its change feed, from the backend the registry knows by that name."""

from __future__ import annotations

from pbxsync.sync.config import Config
from pbxsync.sync.notify.base import ChangeFeed, FeedClock
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.registry import backend_for


def make_source(config: Config) -> MailboxSource:
    return backend_for(config).make_source(config)


def make_feed(config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
    """The backend's change feed for `source`; None when `[exchange] notifications = "off"` or it has none."""
    if config.exchange.notifications == "off":
        return None
    return backend_for(config).make_feed(config, source, clock)
