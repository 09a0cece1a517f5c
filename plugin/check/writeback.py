"""Checks for writing into Exchange with `[meetings] write_back` (Mail.Send for the organizer notices is
checked by plugin.check.notices).

Graph: the app's access token names its application permissions in its `roles` claim; the write-back
needs Calendars.ReadWrite. Read from the token pbxsync itself gets (only the claims are decoded, nothing
is verified: it is a diagnosis, not a security decision).

EWS: no probe. ApplicationImpersonation lets the service account act as the mailbox owner, writes
included; per-user credentials are the owner's own. What can still refuse a write is a narrower role or
policy: the write-back records such a mailbox as read-only, and this check reports those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from pbxsync.plugin.check.notices import token_roles
from pbxsync.plugin.writeback.store import read_only_mailboxes
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError
from pbxsync.sync.preflight import CheckResult, failed, passed, warned
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.store.db import open_store

NAME = "exchange write permission"


def needed_roles(config: Config) -> list[str]:
    """What the write-back needs; Mail.Send for the organizer notices is plugin.check.notices' line."""
    return ["Calendars.ReadWrite"] if config.meetings.write_back else []


async def _graph(config: Config, make_source: Callable[[Config], MailboxSource]) -> CheckResult:
    needed = needed_roles(config)
    try:
        source = make_source(config)
    except PbxsyncError as exc:
        return failed(NAME, str(exc), "fix the Graph sign-in first (see the authentication line)")
    try:
        if not isinstance(source, GraphSource):
            return warned(NAME, "not a Graph source: the token's permissions cannot be read", "")
        token = await asyncio.to_thread(source.tokens.token)
    except PbxsyncError as exc:
        return failed(NAME, str(exc), "fix the Graph sign-in first (see the authentication line)")
    finally:
        await source.close()
    roles = token_roles(token)
    if roles is None:
        return warned(NAME, "the access token's permissions cannot be read (not a JWT)",
                      f"make sure the app has {' and '.join(needed)} (application) with admin consent")
    missing = [r for r in needed if r not in roles]
    if missing:
        return failed(NAME, f"the app's token lacks {', '.join(missing)} (has: {', '.join(roles) or 'none'})",
                      f"grant {', '.join(missing)} as application permissions with admin consent, scoped to "
                      "the PBX users by an application access policy (docs/exchange-online-graph.md)")
    return passed(NAME, f"the app's token holds {', '.join(needed)}")


async def _read_only(config: Config) -> list[CheckResult]:
    """Mailboxes the running write-back found read-only (an existing database only)."""
    if not await asyncio.to_thread(Path(config.database).is_file):
        return []
    try:
        store = await open_store(config.database)
    except PbxsyncError:
        return []  # the database line reports it
    try:
        blocked = await read_only_mailboxes(store)
    finally:
        await store.close()
    return [failed(f"write-back {m}", f"Exchange refused writing since {b.since:%Y-%m-%d %H:%M} UTC: {b.reason}",
                   "give the service account write access to this mailbox (EWS: ApplicationImpersonation; "
                   "Graph: Calendars.ReadWrite and the application access policy), then wait for the recheck")
            for m, b in sorted(blocked.items())]


async def check_write_back(config: Config, make_source: Callable[[Config], MailboxSource]) -> list[CheckResult]:
    if not needed_roles(config):
        return []
    if config.exchange.backend == "graph":
        results = [await _graph(config, make_source)]
        if config.meetings.write_back and not config.meetings.notify_attendees:
            results.append(warned("write-back notify_attendees", "Graph sends the organizer's update to the "
                                  "attendees whatever notify_attendees says",
                                  "set [meetings] notify_attendees = true (or leave it out) to say what happens"))
    elif config.exchange.impersonation:
        results = [passed(NAME, "ApplicationImpersonation acts as the mailbox owner: it may write")]
    else:
        results = [passed(NAME, "each user's own credentials: the owner may write into their calendar")]
    return results + await _read_only(config)
