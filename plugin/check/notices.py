"""`pbxsync check` for the notices to organizers (only with `[meetings] notify_organizer = true`): the
templates load, and Exchange lets pbxsync send.

- Graph: the app's access token must carry the application permission Mail.Send (its `roles` claim, read
  without verifying the signature: Graph verifies it, we only read what was granted).
- EWS: sending as the organizer is what ApplicationImpersonation already allows (the mailbox checks above
  prove it); a `notices_from` mailbox is checked by finding its Sent Items as pbxsync will before sending.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

from pbxsync.plugin.notices.texts import NoticeTemplates
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError, SourceError, UserError
from pbxsync.sync.preflight import CheckResult, failed, passed, warned
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource

NAME = "notices"
GRAPH_FIX = ("grant the app the application permission Mail.Send with admin consent, and scope it to the PBX "
             "users' mailboxes with an application access policy or RBAC for Applications "
             "(docs/exchange-online-graph.md)")


def token_roles(token: str) -> list[str] | None:
    """The `roles` claim of a JWT access token; None when the token is not a JWT we can read."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    return [str(r) for r in roles] if isinstance(roles, list) else None


async def _graph(source: GraphSource) -> CheckResult:
    name = f"{NAME}: Graph Mail.Send"
    try:
        token = await asyncio.to_thread(source.tokens.token)
    except PbxsyncError as exc:
        return failed(name, f"no access token: {exc}", "see the exchange authentication line above")
    roles = token_roles(token)
    if roles is None:
        return warned(name, "the access token does not say which permissions were granted", GRAPH_FIX)
    if "Mail.Send" not in roles:
        return failed(name, f"the app's token lacks Mail.Send (granted: {', '.join(roles) or 'nothing'})", GRAPH_FIX)
    return passed(name, "the app may send mail (application permission Mail.Send)")


async def _ews(config: Config, source: EwsSource) -> CheckResult:
    sender = config.meetings.notices_from
    name = f"{NAME}: EWS sender"
    if sender == "organizer":
        return passed(name, "each organizer's own mailbox sends, through the service account's impersonation "
                      "(checked with the mailboxes above)")
    try:
        await source.run_as(sender, lambda account: account.sent)
    except SourceError as exc:
        return failed(name, f"{sender}: {exc}", "give the service account ApplicationImpersonation over this "
                      "mailbox (or set [meetings] notices_from = \"organizer\")")
    return passed(name, f"{sender} can send; its Sent Items keep the copies")


async def check_notices(config: Config, make_source: Callable[[Config], MailboxSource]) -> list[CheckResult]:
    if not config.meetings.notify_organizer:
        return []
    meetings = config.meetings
    overrides = f" (overrides in {meetings.notices_templates})" if meetings.notices_templates else ""
    languages = sorted({meetings.notices_language, *(u.notices_language for u in config.users if u.notices_language)})
    try:
        for language in languages:
            NoticeTemplates(language, meetings.notices_templates)
        results = [passed(f"{NAME}: templates", f"language {', '.join(languages)}{overrides}")]
    except UserError as exc:
        results = [failed(f"{NAME}: templates", str(exc), "set [meetings] notices_language to en or de, or add "
                          "the files to [meetings] notices_templates")]
    try:
        source = make_source(config)
    except PbxsyncError:
        return results  # the exchange lines above say why
    try:
        if isinstance(source, GraphSource):
            results.append(await _graph(source))
        elif isinstance(source, EwsSource):
            results.append(await _ews(config, source))
    finally:
        await source.close()
    return results
