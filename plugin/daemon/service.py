"""The contract between the daemon's supervisor and every part it runs.

A part plugs in as a `Service`: `start()` acquires what it needs (binds a socket, logs in) and raises
if it cannot; `run()` is its long-running body (the default just waits until stopped); `stop()` lets
in-flight work finish (the supervisor gives it a deadline, then cancels `run()`); `health()` reports
its own view. A part that raises from `start()` or `run()` is logged, shown as failed in `status`,
and restarted with back-off by the supervisor; it is never silently lost.

The wiring (`plugin.daemon.wiring`) turns the config into `ServiceSpec`s. A spec's `settings` are the
config values the service depends on: after SIGHUP, a service whose settings changed is restarted
with the new config, the others keep running untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Generic, TypeVar

from pbxsync.sync.http_site import Site
from pbxsync.sync.secrets import Secret

T = TypeVar("T")


@dataclass
class Health:
    """What a service says about itself. `ok` False makes `status` show it as degraded."""

    ok: bool = True
    detail: str = ""  # one line for humans: "logged in to 127.0.0.1:5038", "listening on 127.0.0.1:3890"
    data: dict[str, Any] = field(default_factory=dict)  # JSON-able facts for `status --json`


def listening(address: str | None) -> Health:
    """A listener's health: where it listens, or that it does not (None)."""
    if address is None:
        return Health(False, "not listening")
    return Health(True, f"listening on {address}", {"listen": address})


class Service:
    """Base class with sensible defaults; override what the part needs."""

    name: str = "service"

    def __init__(self) -> None:
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Acquire resources. Raise (any Exception) to report failure; the supervisor retries."""

    async def run(self) -> None:
        """The long-running body. Return after `stop()`; raising counts as a crash (restarted)."""
        await self._stopped.wait()

    async def stop(self) -> None:
        """Finish in-flight work and release resources. Must be safe to call after a failed start."""
        self._stopped.set()

    def health(self) -> Health:
        return Health()


class ServerService(Service):
    """An asyncio server (LDAP, FastAGI, control): `start_server` returns a started asyncio.Server."""

    def __init__(self, name: str, start_server: Callable[[], Awaitable[asyncio.Server]]) -> None:
        super().__init__()
        self.name = name
        self._start_server = start_server
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await self._start_server()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            # wait_closed waits for open connections too (Python 3.12+); the supervisor's deadline bounds it
            await self.server.wait_closed()
            self.server = None
        await super().stop()

    @property
    def address(self) -> str:
        if self.server is None or not self.server.sockets:
            return ""
        name = self.server.sockets[0].getsockname()
        if isinstance(name, str):  # a Unix socket's path
            return name
        host, port = name[:2]
        return f"{host}:{port}"

    def health(self) -> Health:
        return listening(self.address if self.server is not None else None)


class SiteService(Service):
    """An aiohttp application (control, metrics, the web portal): `start_site` returns a started Site
    (pbxsync.sync.http_site, which holds every HTTP listener to the same connection limits)."""

    def __init__(self, name: str, start_site: Callable[[], Awaitable[Site]]) -> None:
        super().__init__()
        self.name = name
        self._start_site = start_site
        self.site: Site | None = None

    async def start(self) -> None:
        self.site = await self._start_site()

    async def stop(self) -> None:
        if self.site is not None:
            await self.site.close()  # in-flight answers finish first; the supervisor's deadline bounds it
            self.site = None
        await super().stop()

    @property
    def address(self) -> str:
        return self.site.address if self.site is not None else ""

    def health(self) -> Health:
        return listening(self.address if self.site is not None else None)


class TaskService(Service):
    """A background coroutine (a watcher, a refresher): `body()` runs until it returns or stop() cancels it."""

    def __init__(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self.name = name
        self._body = body

    async def run(self) -> None:
        body = asyncio.ensure_future(self._body())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({body, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not body.done():
                body.cancel()
                await asyncio.gather(body, return_exceptions=True)
        if body.done() and not body.cancelled():
            error = body.exception()
            if error is not None:
                raise error


class Slot(Generic[T]):
    """One object a part offers the others while it runs (the running sync service, the LDAP server, the
    voicemail users): typed, empty (None) until published. `withdraw` empties it only if it still holds
    what the caller published, so a stopping part never takes away its successor's."""

    def __init__(self) -> None:
        self.value: T | None = None

    def publish(self, value: T) -> None:
        self.value = value

    def withdraw(self, value: T) -> None:
        if self.value is value:
            self.value = None

    def clear(self) -> None:
        self.value = None


ServiceFactory = Callable[[], Service]


@dataclass(frozen=True)
class ServiceSpec:
    """How to build one named service, and which config values it depends on (see `fingerprint`)."""

    name: str
    factory: ServiceFactory
    settings: object = None
    critical: bool = False  # a critical service that cannot start at launch fails `pbxsync run` instead
    # Addresses it listens on ("127.0.0.1:389", a socket path). When a reload moves all of them, the new
    # listener is bound before the old one closes, so clients never find nobody listening.
    binds: tuple[str, ...] = ()


def fingerprint(settings: object) -> str:
    """A digest of config values, secrets included (a rotated secret must restart its user)."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()


def _canonical(value: object) -> str:
    if isinstance(value, Secret):
        return "S" + repr(value.reveal())
    if is_dataclass(value) and not isinstance(value, type):
        inner = ",".join(f"{f.name}={_canonical(getattr(value, f.name))}" for f in fields(value))
        return f"{type(value).__name__}({inner})"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_canonical(k)}:{_canonical(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)
