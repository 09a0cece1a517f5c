"""What an Exchange backend declares: its config, its validation, how to build it (its source and, if it has
one, its change feed), and its preflight checks.

A backend is one module in sync/sources that subclasses `Backend` and is listed in `registry.py`. The
config loader, the source factory and `pbxsync check` only look backends up; none of them names one.

The declaration is kept light: `make_source` imports the source module (exchangelib, msal, requests)
only when a source is built, so validating a config stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pbxsync.sync.errors import SourceError
from pbxsync.sync.preflight import CheckResult

if TYPE_CHECKING:
    from pbxsync.sync.config import Config, UserConfig
    from pbxsync.sync.notify.base import ChangeFeed, FeedClock
    from pbxsync.sync.sources.base import MailboxSource


@dataclass(frozen=True)
class ReachTarget:
    """A URL the agent must be able to connect to, and what it is for the admin ("EWS", "token endpoint")."""

    what: str
    url: str


@dataclass(frozen=True)
class MailboxProbe:
    """How reading one user's mailbox went during `pbxsync check`; `error` None means it worked."""

    user: UserConfig
    error: SourceError | None


class Backend(ABC):
    """One way of reading Exchange. Subclass per backend; the defaults fit app-wide credentials.

    `options`: a frozen dataclass of keys only this backend reads, given as the table
    `[exchange.<name>]` and handed over as `config.exchange.options`; None when it needs none (the
    `ews` and `graph` backends read flat `[exchange]` keys, as they did before backends were declared).
    """

    name: ClassVar[str]
    options: ClassVar[type[Any] | None] = None

    @abstractmethod
    def make_source(self, config: Config) -> MailboxSource:
        """The source for this config (validated). May raise a PbxsyncError, e.g. for unreadable key files."""

    def make_feed(self, config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
        """Its change feed (sync.notify.base), watching the folders `source` syncs; None: timed passes only.
        Called once per start of the daemon's sync service, with that service's source."""
        return None

    def problems(self, config: Config) -> list[str]:
        """What this backend needs that the config lacks, each as "key.path: what is wrong"."""
        return []

    def reach_targets(self, config: Config) -> list[ReachTarget]:
        """The endpoints `pbxsync check` connects to before it reads any mailbox."""
        return []

    def account(self, config: Config) -> str:
        """Who signs in, for the check line ("accepted for ..."); "" for per-user credentials."""
        return ""

    def shared_credentials(self, config: Config) -> bool:
        """True when one credential reads every mailbox, so one refusal means the credential is wrong."""
        return True

    def auth_fix(self, config: Config) -> str:
        """What the admin does when Exchange refuses the credentials."""
        return "check the credentials in [exchange]"

    def access_fix(self, config: Config, user: UserConfig) -> str:
        """What the admin does when the credentials work but this user's mailbox may not be read."""
        return f"check that the configured account may read the mailbox {user.mailbox}"

    def extra_checks(self, config: Config, source: MailboxSource, probes: list[MailboxProbe]) -> list[CheckResult]:
        """Checks of its own, after every mailbox was probed (EWS: which URL autodiscover found)."""
        return []
