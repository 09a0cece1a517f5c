"""Builds the configured Exchange source, from the backend the registry knows by that name."""

from __future__ import annotations

from pbxsync.sync.config import Config
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.registry import backend_for


def make_source(config: Config) -> MailboxSource:
    return backend_for(config).make_source(config)
