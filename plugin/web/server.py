"""The portal as a daemon service: the app served on `[web] listen` by the daemon's one HTTP stack
(pbxsync.sync.http_site: connection caps, header/body limits, request deadline), with TLS when configured.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.plugin.web.app import MAX_BODY, create_app
from pbxsync.plugin.web.context import SyncTrigger, WebContext
from pbxsync.plugin.web.number_display import NumberFormsFiller
from pbxsync.plugin.web.secret_key import key_path, load_or_create_key
from pbxsync.sync.config import Config
from pbxsync.sync.http_site import Limits, Site, start_site, tls_context
from pbxsync.sync.store.db import Store

# Browsers keep connections open and load a page's stylesheet and script beside it: keep-alive on.
LIMITS = Limits(max_connections=256, per_source=64, max_body_bytes=MAX_BODY, keep_alive=True)


class WebService(Service):
    name = "web"

    def __init__(self, ctx: WebContext, number_forms_wake: Slot[Callable[[], None]] | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.site: Site | None = None
        self.number_forms = NumberFormsFiller(ctx.store)
        self.number_forms_wake = number_forms_wake if number_forms_wake is not None else Slot()

    async def start(self) -> None:
        web_config = self.ctx.config.web
        tls = tls_context(web_config.tls_cert, web_config.tls_key, "web.tls_cert") if web_config.tls_cert else None
        self.ctx.tls = tls is not None
        self.site = await start_site(create_app(self.ctx), web_config.listen, limits=LIMITS, tls=tls)
        self.number_forms.wake()  # numbers synced before the portal ran; then after each pass (the daemon's hook)
        self.number_forms_wake.publish(self.number_forms.wake)

    async def stop(self) -> None:
        self.number_forms_wake.clear()
        await self.number_forms.close()
        if self.site is not None:
            await self.site.close()
            self.site = None
        await self.ctx.sync_jobs.close()
        await super().stop()

    @property
    def url(self) -> str:
        address = self.site.address if self.site is not None else ""
        return f"{'https' if self.ctx.tls else 'http'}://{address}/"

    def health(self) -> Health:
        if self.site is None:
            return Health(False, "not listening")
        return Health(True, f"portal at {self.url}", {"listen": self.site.address, "tls": self.ctx.tls})


def web_service(config: Callable[[], Config], store: Store, clock: Clock, sync_now: SyncTrigger,
                ami: Slot[AmiClient], settings_changed: Callable[[], Awaitable[None]], *,
                daemon_status: Callable[[], dict[str, Any]] | None = None,
                number_forms_wake: Slot[Callable[[], None]] | None = None) -> WebService:
    """The daemon's portal: the signing key from its file (made on first start)."""
    key = load_or_create_key(key_path(config()))
    return WebService(WebContext(config, store, clock, key, sync_now, ami, settings_changed,
                                 daemon_status=daemon_status), number_forms_wake)
