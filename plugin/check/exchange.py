"""Exchange checks: the server answers, the credentials work, autodiscover finds EWS, each mailbox is readable.

Each mailbox is probed with the cheapest real call the sync makes: a CalendarView (EWS) or calendarView
(Graph) over one minute. It exercises the same endpoint, authentication and mailbox access rights as a
sync, and reads at most a handful of items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from pbxsync.plugin.check.model import CheckResult, failed, passed, skipped
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.errors import (
    PbxsyncError,
    SourceAccessError,
    SourceAuthError,
    SourceBusyError,
    SourceError,
)
from pbxsync.sync.sources.base import MailboxSource

SourceFactory = Callable[[Config], MailboxSource]
PROBE_WINDOW = timedelta(minutes=1)


def reach_targets(config: Config) -> list[tuple[str, str]]:
    """(what, URL) pairs the agent must reach for this config."""
    ex = config.exchange
    if ex.backend == "graph":
        return [("token endpoint", ex.authority), ("Graph", ex.graph_endpoint)]
    if ex.server:
        return [("EWS", ex.server)]
    if ex.autodiscover_url:
        return [("autodiscover", ex.autodiscover_url)]
    return []


async def check_reachable(what: str, url: str, within: float) -> CheckResult:
    name = f"exchange reachable ({what})"
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return failed(name, f"cannot connect to {host}:{port} ({reason})",
                      "check the URL in the config, DNS, and that a firewall lets this host reach it on "
                      f"port {port}")
    writer.close()
    return passed(name, f"{host}:{port} accepts connections")


def _access_fix(config: Config, user: UserConfig) -> str:
    ex = config.exchange
    if ex.backend == "graph":
        return ("grant the app the application permissions Calendars.Read and Contacts.Read with admin consent, "
                f"and include {user.mailbox} in its application access policy (see docs/exchange-online-graph.md)")
    if ex.impersonation:
        return (f"give {ex.username} the ApplicationImpersonation role for this mailbox "
                f"(New-ManagementRoleAssignment -Role ApplicationImpersonation -User {ex.username}), "
                "or check the address in [[users]] email")
    return f"check that {user.username or 'the user'} may open the mailbox {user.mailbox}"


def _auth_fix(config: Config) -> str:
    ex = config.exchange
    if ex.backend == "graph":
        return ("check [exchange] tenant_id, client_id and client_secret (or certificate); an expired client "
                "secret must be renewed in Entra ID")
    if not ex.impersonation:
        return "check each user's username/password in [[users]] (the failing users are listed below)"
    return (f"check [exchange] username ({ex.username}), password and auth ({ex.auth}); the account must be "
            "able to log in to EWS")


async def _probe(source: MailboxSource, user: UserConfig, now: datetime, within: float) -> SourceError | None:
    try:
        await asyncio.wait_for(source.calendar_window(user.mailbox, now, now + PROBE_WINDOW), within)
    except TimeoutError:
        return SourceError(f"no answer within {within:g} s")
    except SourceError as exc:
        return exc
    return None


@runtime_checkable
class _KnowsEndpoint(Protocol):
    """A source that can tell its EWS URL per mailbox (sync.sources.ews.EwsSource), without importing
    exchangelib here."""

    def endpoint_for(self, mailbox: str) -> str: ...


def _endpoint_of(source: MailboxSource, mailbox: str) -> str:
    """The EWS URL the source uses for a mailbox (after autodiscover), "" when it cannot tell."""
    return source.endpoint_for(mailbox) if isinstance(source, _KnowsEndpoint) else ""


async def check_exchange(config: Config, make_source: SourceFactory, now: datetime,
                         within: float = 30.0) -> list[CheckResult]:
    results = [await check_reachable(what, url, min(within, 10.0)) for what, url in reach_targets(config)]
    users = [u for u in config.users if u.sync_contacts or u.sync_calendar]
    if not users:
        results.append(failed("exchange mailboxes", "no user has contact or calendar sync on",
                              "add [[users]] entries with extension and email (see examples/pbxsync.toml)"))
        return results
    try:
        source = make_source(config)
    except PbxsyncError as exc:
        results.append(failed("exchange authentication", str(exc), _auth_fix(config)))
        return results
    try:
        limit = asyncio.Semaphore(config.sync.concurrency)

        async def probe(user: UserConfig) -> SourceError | None:
            async with limit:
                return await _probe(source, user, now, within)

        errors = await asyncio.gather(*(probe(u) for u in users))
        results += _summarise(config, source, users, errors)
    finally:
        await source.close()
    return results


def _summarise(config: Config, source: MailboxSource, users: list[UserConfig],
               errors: list[SourceError | None]) -> list[CheckResult]:
    results: list[CheckResult] = []
    auth_errors = [e for e in errors if isinstance(e, SourceAuthError)]
    worked = [u for u, e in zip(users, errors, strict=True) if e is None or isinstance(e, SourceAccessError)]
    who = config.exchange.client_id if config.exchange.backend == "graph" else config.exchange.username
    if auth_errors and (config.exchange.impersonation or config.exchange.backend == "graph"):
        results.append(failed("exchange authentication", str(auth_errors[0]), _auth_fix(config)))
    elif worked:
        results.append(passed("exchange authentication",
                              f"accepted for {who or 'the per-user credentials'}"))
    else:
        results.append(skipped("exchange authentication", "no mailbox could be reached", "see the lines below"))
    if config.exchange.backend == "ews" and not config.exchange.server:
        ok_user = next((u for u, e in zip(users, errors, strict=True) if e is None), None)
        if ok_user is not None:
            endpoint = _endpoint_of(source, ok_user.mailbox) or "an EWS URL"
            results.append(passed("exchange autodiscover", f"{ok_user.mailbox} -> {endpoint}"))
        else:
            first = next(e for e in errors if e is not None)
            results.append(failed("exchange autodiscover", f"no EWS URL found: {first}",
                                  "set [exchange] server to the EWS URL (https://mail.example.com/EWS/Exchange.asmx) "
                                  "or autodiscover_url to the autodiscover service"))
    for user, error in zip(users, errors, strict=True):
        name = f"mailbox {user.mailbox} ({user.extension})"
        if error is None:
            results.append(passed(name, "readable"))
        elif isinstance(error, SourceAccessError):
            results.append(failed(name, str(error), _access_fix(config, user)))
        elif isinstance(error, SourceAuthError):
            results.append(failed(name, str(error), _auth_fix(config)))
        elif isinstance(error, SourceBusyError):
            results.append(failed(name, str(error), "Exchange is throttling; run the check again later, and "
                                  "lower [exchange] max_connections or [sync] concurrency"))
        else:
            results.append(failed(name, str(error), "see the message; check the address in [[users]] email "
                                  "and the Exchange server's event log"))
    return results
