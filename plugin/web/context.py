"""What every web handler may use: the config, the store, the clock, the daemon's AMI link and its
"Sync now", and the portal's own state (the signing key, the sign-in throttle). Handlers reach it with
`web_context(request)`; nothing in plugin.web imports the daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Slot
from pbxsync.plugin.web.signin_guard import SigninGuard
from pbxsync.plugin.web.sync_jobs import SyncJobs, SyncTrigger
from pbxsync.sync.config import Config
from pbxsync.sync.store.db import Store

__all__ = ["CONTEXT", "SyncTrigger", "WebContext", "web_context"]


async def _nothing_to_apply() -> None:
    return None


@dataclass
class WebContext:
    current_config: Callable[[], Config]  # the daemon's current one (with the users' own settings applied)
    store: Store
    clock: Clock
    secret_key: bytes  # signs session cookies and CSRF tokens (plugin.web.secret_key)
    sync_now: SyncTrigger
    ami: Slot[AmiClient] = field(default_factory=Slot)  # empty while the daemon has no AMI link
    # After a user changed their settings (plugin.user_settings): the daemon applies them to its parts.
    settings_changed: Callable[[], Awaitable[None]] = _nothing_to_apply
    tls: bool = False  # served over HTTPS (cookies are then Secure)
    signin_guard: SigninGuard = field(default_factory=SigninGuard)  # wrong passwords, per extension and address
    sync_jobs: SyncJobs = field(default_factory=SyncJobs)  # "Sync now" passes started from the portal
    daemon_status: Callable[[], dict[str, Any]] | None = None  # the daemon's /status document (admin Health)

    @property
    def config(self) -> Config:
        return self.current_config()


CONTEXT: web.AppKey[WebContext] = web.AppKey("pbxsync_web_context", WebContext)


def web_context(request: web.Request) -> WebContext:
    return request.app[CONTEXT]
