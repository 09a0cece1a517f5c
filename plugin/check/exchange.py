"""Exchange checks: the server answers, the credentials work, each mailbox is readable, and whatever the
configured backend adds (EWS: which URL autodiscover found).

What differs between backends (which endpoints to reach, who signs in, the fix hints, extra checks) is
declared by the backend (`sync.sources.backend.Backend`); this module only runs it. Each mailbox is
probed with the cheapest real call the sync makes, a calendar window of one minute: it exercises the same
endpoint, authentication and mailbox access rights as a sync, and reads at most a handful of items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.errors import (
    PbxsyncError,
    SourceAccessError,
    SourceAuthError,
    SourceBusyError,
    SourceError,
)
from pbxsync.sync.preflight import CheckResult, failed, passed, skipped
from pbxsync.sync.sources.backend import Backend, MailboxProbe, ReachTarget
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.registry import backend_for

SourceFactory = Callable[[Config], MailboxSource]
PROBE_WINDOW = timedelta(minutes=1)


async def check_reachable(target: ReachTarget, within: float) -> CheckResult:
    name = f"exchange reachable ({target.what})"
    parts = urlsplit(target.url)
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


async def _probe(source: MailboxSource, user: UserConfig, now: datetime, within: float) -> MailboxProbe:
    try:
        await asyncio.wait_for(source.calendar_window(user.mailbox, now, now + PROBE_WINDOW), within)
    except TimeoutError:
        return MailboxProbe(user, SourceError(f"no answer within {within:g} s"))
    except SourceError as exc:
        return MailboxProbe(user, exc)
    return MailboxProbe(user, None)


async def check_exchange(config: Config, make_source: SourceFactory, now: datetime,
                         within: float = 30.0) -> list[CheckResult]:
    backend = backend_for(config)
    results = [await check_reachable(t, min(within, 10.0)) for t in backend.reach_targets(config)]
    users = [u for u in config.users if u.sync_contacts or u.sync_calendar]
    if not users:
        results.append(failed("exchange mailboxes", "no user has contact or calendar sync on",
                              "add [[users]] entries with extension and email (see examples/pbxsync.toml)"))
        return results
    try:
        source = make_source(config)
    except PbxsyncError as exc:
        results.append(failed("exchange authentication", str(exc), backend.auth_fix(config)))
        return results
    try:
        limit = asyncio.Semaphore(config.sync.concurrency)

        async def probe(user: UserConfig) -> MailboxProbe:
            async with limit:
                return await _probe(source, user, now, within)

        probes = list(await asyncio.gather(*(probe(u) for u in users)))
        results += _summarise(config, backend, source, probes)
    finally:
        await source.close()
    return results


def _summarise(config: Config, backend: Backend, source: MailboxSource,
               probes: list[MailboxProbe]) -> list[CheckResult]:
    results: list[CheckResult] = []
    auth_errors = [p.error for p in probes if isinstance(p.error, SourceAuthError)]
    worked = [p for p in probes if p.error is None or isinstance(p.error, SourceAccessError)]
    if auth_errors and backend.shared_credentials(config):
        results.append(failed("exchange authentication", str(auth_errors[0]), backend.auth_fix(config)))
    elif worked:
        results.append(passed("exchange authentication",
                              f"accepted for {backend.account(config) or 'the per-user credentials'}"))
    else:
        results.append(skipped("exchange authentication", "no mailbox could be reached", "see the lines below"))
    results += backend.extra_checks(config, source, probes)
    for probe in probes:
        user, error = probe.user, probe.error
        name = f"mailbox {user.mailbox} ({user.extension})"
        if error is None:
            results.append(passed(name, "readable"))
        elif isinstance(error, SourceAccessError):
            results.append(failed(name, str(error), backend.access_fix(config, user)))
        elif isinstance(error, SourceAuthError):
            results.append(failed(name, str(error), backend.auth_fix(config)))
        elif isinstance(error, SourceBusyError):
            results.append(failed(name, str(error), "Exchange is throttling; run the check again later, and "
                                  "lower [exchange] max_connections or [sync] concurrency"))
        else:
            results.append(failed(name, str(error), "see the message; check the address in [[users]] email "
                                  "and the Exchange server's event log"))
    return results
