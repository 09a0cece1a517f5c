"""The `ews` backend: Exchange on-premises over EWS (sync/sources/ews.py), as config, factory and checks see it.

Its keys are the flat `[exchange]` ones: server (blank = autodiscover), auth, username/password (the
service account with impersonation, else per-user credentials in `[[users]]`), verify_tls, ca_file,
version, autodiscover_url, max_connections, timeout_seconds. Its change feed: EWS streaming notifications.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pbxsync.sync.preflight import CheckResult, failed, passed
from pbxsync.sync.sources.backend import Backend, MailboxProbe, ReachTarget

if TYPE_CHECKING:
    from pbxsync.sync.config import Config, UserConfig
    from pbxsync.sync.notify.base import ChangeFeed, FeedClock
    from pbxsync.sync.sources.base import MailboxSource


@runtime_checkable
class _KnowsEndpoint(Protocol):
    """What `EwsSource` tells about the EWS URL of a mailbox (after autodiscover)."""

    def endpoint_for(self, mailbox: str) -> str: ...


class EwsBackend(Backend):
    name = "ews"

    def make_source(self, config: Config) -> MailboxSource:
        from pbxsync.sync.sources.ews import EwsSource  # exchangelib: imported only when a source is built

        return EwsSource(config.exchange, config.users, config.sync.default_region,
                         keep_bodies=config.meetings.write_back,
                         threads=max(32, config.sync.concurrency * config.exchange.max_connections))

    def make_feed(self, config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
        """EWS streaming notifications (sync/notify/ews_streaming.py) over the source's accounts."""
        from pbxsync.sync.notify.ews_streaming import EwsStreamingFeed
        from pbxsync.sync.sources.ews import EwsSource

        return EwsStreamingFeed(source, clock) if isinstance(source, EwsSource) else None

    def problems(self, config: Config) -> list[str]:
        ex = config.exchange
        found: list[str] = []
        if ex.impersonation and not ex.username:
            found.append("exchange.username: required for impersonation (the service account)")
        if not ex.impersonation:
            found += [f"users[{i}]: username and password are required when exchange.impersonation = false"
                      for i, u in enumerate(config.users) if not (u.username and u.password)]
        return found

    def reach_targets(self, config: Config) -> list[ReachTarget]:
        ex = config.exchange
        if ex.server:
            return [ReachTarget("EWS", ex.server)]
        if ex.autodiscover_url:
            return [ReachTarget("autodiscover", ex.autodiscover_url)]
        return []

    def account(self, config: Config) -> str:
        return config.exchange.username

    def shared_credentials(self, config: Config) -> bool:
        return config.exchange.impersonation

    def auth_fix(self, config: Config) -> str:
        ex = config.exchange
        if not ex.impersonation:
            return "check each user's username/password in [[users]] (the failing users are listed below)"
        return (f"check [exchange] username ({ex.username}), password and auth ({ex.auth}); the account must be "
                "able to log in to EWS")

    def access_fix(self, config: Config, user: UserConfig) -> str:
        ex = config.exchange
        if ex.impersonation:
            return (f"give {ex.username} the ApplicationImpersonation role for this mailbox "
                    f"(New-ManagementRoleAssignment -Role ApplicationImpersonation -User {ex.username}), "
                    "or check the address in [[users]] email")
        return f"check that {user.username or 'the user'} may open the mailbox {user.mailbox}"

    def extra_checks(self, config: Config, source: MailboxSource, probes: list[MailboxProbe]) -> list[CheckResult]:
        """Without a configured server, the EWS URL came from autodiscover: say which one."""
        if config.exchange.server:
            return []
        name = "exchange autodiscover"
        ok = next((p for p in probes if p.error is None), None)
        if ok is not None:
            endpoint = source.endpoint_for(ok.user.mailbox) if isinstance(source, _KnowsEndpoint) else ""
            return [passed(name, f"{ok.user.mailbox} -> {endpoint or 'an EWS URL'}")]
        first = next(p.error for p in probes if p.error is not None)
        return [failed(name, f"no EWS URL found: {first}",
                       "set [exchange] server to the EWS URL (https://mail.example.com/EWS/Exchange.asmx) "
                       "or autodiscover_url to the autodiscover service")]


EWS = EwsBackend()
