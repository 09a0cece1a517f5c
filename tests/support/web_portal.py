"""The web portal for tests: a config with users, a context, an aiohttp test client, and (for the browser)
the portal served from a thread of its own, so Selenium's blocking calls never stall its event loop.

Users: 101 Ada (admin), 102 Bob, 103 Eve; every password is `password-<extension>`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.app import create_app
from pbxsync.plugin.web.context import WebContext
from pbxsync.plugin.web.server import WebService
from pbxsync.sync.config import Config, UserConfig, WebConfig
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.store.db import Store, open_store

KEY = bytes(range(32))
USERS = [UserConfig("101", ["ada@example.com"], "Ada Admin", room="800"),
         UserConfig("102", ["bob@example.com"], "Bob Builder", room="801"),
         UserConfig("103", ["eve@example.com"], "Eve Example")]


def password_of(extension: str) -> str:
    return f"password-{extension}"


def portal_config(database: str = ":memory:", **web: Any) -> Config:
    settings = {"enabled": True, "listen": ListenAddress("127.0.0.1", 0), "admins": ["101"], **web}
    return Config(database=database, users=list(USERS), web=WebConfig(**settings))


@dataclass
class SyncCalls:
    """A stand-in for the daemon's "Sync now": records who asked; `hold` keeps passes running."""

    calls: list[str] = field(default_factory=list)
    hold: asyncio.Event | None = None

    async def __call__(self, extension: str) -> PassSummary:
        self.calls.append(extension)
        if self.hold is not None:
            await self.hold.wait()
        return PassSummary(datetime.now(UTC), [])


async def make_context(store: Store, config: Config | None = None, clock: FakeClock | None = None,
                       sync_now: Callable[[str], Awaitable[Any]] | None = None) -> WebContext:
    chosen = config or portal_config()
    ctx = WebContext(lambda: chosen, store, clock or FakeClock(), KEY, sync_now or SyncCalls())
    for user in ctx.config.users:
        await accounts.set_password(store, user.extension, password_of(user.extension), ctx.clock.now())
    return ctx


@asynccontextmanager
async def portal_client(ctx: WebContext) -> AsyncIterator[TestClient[Any, Any]]:
    """An aiohttp test client of the portal (Host 127.0.0.1:PORT, an allowed host)."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(ctx), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def token_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def signin_form(client: TestClient[Any, Any]) -> str:
    response = await client.get("/signin")
    assert response.status == 200
    return token_of(await response.text())


async def sign_in(client: TestClient[Any, Any], extension: str, password: str | None = None) -> Any:
    token = await signin_form(client)
    return await client.post("/signin", data={"extension": extension, "password": password or password_of(extension),
                                              "csrf": token, "next": "/"}, allow_redirects=False)



@dataclass
class RunningPortal:
    url: str  # http://127.0.0.1:PORT
    ctx: WebContext
    loop: asyncio.AbstractEventLoop

    def call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run a coroutine on the portal's loop (to read or change the store from a test)."""
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout=30)


@contextmanager
def portal_in_thread(tmp_path: Path, fill: Callable[[Store], Awaitable[None]] | None = None,
                     sync_now: Callable[[str], Awaitable[Any]] | None = None, **web: Any) -> Iterator[RunningPortal]:
    """The portal on 127.0.0.1:<free port>, over a store in `tmp_path` filled by `fill`; `sync_now` runs on
    the portal's loop (default: SyncCalls)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="portal", daemon=True)
    thread.start()

    async def start() -> tuple[WebService, Store]:
        store = await open_store(tmp_path / "portal.db")
        if fill is not None:
            await fill(store)
        ctx = await make_context(store, portal_config(str(tmp_path / "portal.db"), **web), sync_now=sync_now)
        service = WebService(ctx)
        await service.start()
        return service, store

    service, store = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield RunningPortal(service.url.rstrip("/"), service.ctx, loop)
    finally:
        async def stop() -> None:
            await service.stop()
            await store.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


__all__ = ["KEY", "USERS", "RunningPortal", "SyncCalls", "make_context", "password_of", "portal_client",
           "portal_config", "portal_in_thread", "sign_in", "signin_form", "token_of"]


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def fill_sync_state(store: Store, clock: FakeClock) -> None:
    """Bob (102): contacts synced, calendar failing with a hostile error text, two skipped contacts (one
    with a hostile folder name and reason); Eve (103): nothing yet."""
    from pbxsync.sync.model import Folder, SkippedItem
    from pbxsync.sync.store.folders import record_failure, record_success
    from pbxsync.sync.store.skipped import record_skips

    now = clock.now()
    async with store.transaction() as conn:
        await record_success(conn, "bob@example.com", Folder.CONTACTS, now, "state-1")
        await record_skips(conn, "bob@example.com", Folder.CONTACTS, now,
                           [SkippedItem(f"Kontakte/{XSS}", "AAMk-1", f"not a contact: {XSS}"),
                            SkippedItem("", "AAMk-2", "a distribution list, not a phonebook entry")])
    await record_failure(store, "bob@example.com", Folder.CALENDAR, now, f"ErrorAccessDenied {XSS}", "access")
