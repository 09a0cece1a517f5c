"""The portal as a daemon service: the app served on `[web] listen`, with TLS when configured.

`serve` is the one place that binds: when pbxsync.sync.http_site (one HTTP stack for every listener)
lands, it replaces this function's body.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.plugin.web.app import create_app
from pbxsync.plugin.web.context import SyncTrigger, WebContext
from pbxsync.plugin.web.secret_key import key_path, load_or_create_key
from pbxsync.sync.config import Config, WebConfig
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.store.db import Store

SHUTDOWN_SECONDS = 5.0


def tls_context(web_config: WebConfig) -> ssl.SSLContext | None:
    if not web_config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(web_config.tls_cert, web_config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"web.tls_cert/tls_key: cannot load {web_config.tls_cert}: {exc}"]) from None
    return context


async def serve(app: web.Application, listen: ListenAddress, tls: ssl.SSLContext | None) -> tuple[web.AppRunner, str]:
    """Start serving `app`; returns the runner (to clean up) and the address bound ("host:port")."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, listen.host, listen.port, ssl_context=tls, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    host, port = runner.addresses[0][:2]  # port 0 in the config: the port the system chose
    return runner, str(ListenAddress(str(host), int(port)))


class WebService(Service):
    name = "web"

    def __init__(self, ctx: WebContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.runner: web.AppRunner | None = None
        self.address = ""

    async def start(self) -> None:
        tls = tls_context(self.ctx.config.web)
        self.ctx.tls = tls is not None
        self.runner, self.address = await serve(create_app(self.ctx), self.ctx.config.web.listen, tls)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await super().stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.ctx.tls else 'http'}://{self.address}/"

    def health(self) -> Health:
        if self.runner is None:
            return Health(False, "not listening")
        return Health(True, f"portal at {self.url}", {"listen": self.address, "tls": self.ctx.tls})


def web_service(config: Callable[[], Config], store: Store, clock: Clock, sync_now: SyncTrigger,
                ami: Slot[AmiClient], settings_changed: Callable[[], Awaitable[None]]) -> WebService:
    """The daemon's portal: the signing key from its file (made on first start)."""
    key = load_or_create_key(key_path(config()))
    return WebService(WebContext(config, store, clock, key, sync_now, ami, settings_changed))
