"""Builds the configured Exchange source. The only place that knows which backends exist."""

from __future__ import annotations

from pbxsync.sync.config import Config
from pbxsync.sync.sources.base import MailboxSource


def make_source(config: Config) -> MailboxSource:
    if config.exchange.backend == "graph":
        from pbxsync.sync.sources.graph import GraphSource

        return GraphSource(config.exchange, config.sync)
    from pbxsync.sync.sources.ews import EwsSource

    return EwsSource(config.exchange, config.users, config.sync.default_region)
