"""The LDAP phonebook server: asyncio listeners and transports, TLS, timeouts, index refresh.

The protocol itself is `plugin.ldap.session` (sans-IO: bytes in, responses out); this module carries its
bytes. Requests are answered from the in-memory index in short slices shared out by `plugin.ldap.turns`
(one bounded run per loop turn), so that a costly search never holds the loop that answers FastAGI and
times AUTOCALL; work is dropped when its client disconnects, and a throttled bind waits on a timer, not
on the loop. Writes are flow-controlled: when a client stops reading, we stop answering its requests.
StartTLS and LDAPS are asyncio's TLS; idle connections are closed; the connection count is capped, in
total and per source address. See docs/design.md, "Isolation on the LAN".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sqlite3
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from pbxsync.plugin.ldap.access import Access
from pbxsync.plugin.ldap.build import build_from_store, build_index
from pbxsync.plugin.ldap.directory import Directory
from pbxsync.plugin.ldap.index import Index
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import ResultCode, notice_of_disconnection
from pbxsync.plugin.ldap.session import LdapSession
from pbxsync.plugin.ldap.turns import Turns
from pbxsync.plugin.store_follower import StoreFollower
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError, UserError
from pbxsync.sync.http_site import tls_context
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.ldap")

HEAVY_SECONDS = 0.005  # CPU a phone's search never needs; beyond, a request waits in the heavy queue


class LdapServerError(UserError):
    """The LDAP server cannot start (address in use, unreadable certificate)."""


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    return tls_context(cert, key, "ldap.tls_cert/tls_key", LdapServerError)


class LdapServer:
    """Serves the store's contacts to phones. Construct, `await start()`, `await stop()`.

    The index is rebuilt in a worker thread when the store changes: `refresh()` asks for that now (call
    it after a sync), and with `[ldap] refresh_seconds` > 0 the store's change counter is polled too.
    """

    def __init__(self, config: Config, store: Store | str | os.PathLike[str], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.settings = config.ldap
        self.db_path = store.path if isinstance(store, Store) else os.fspath(store)
        self.clock = clock
        self.forms = NumberForms(config.sync.default_region)
        self.tls: ssl.SSLContext | None = None
        if self.settings.tls_cert and self.settings.tls_key:
            self.tls = make_tls_context(self.settings.tls_cert, self.settings.tls_key)
        self.directory = Directory(self.settings, Access(config), self.forms,
                                   build_index([], self.settings.base_dn, self.forms), clock,
                                   start_tls=self.tls is not None)
        self.connections: set[_Connection] = set()
        self.per_source: Counter[str] = Counter()
        self.turns = Turns()
        self.addresses: list[tuple[str, int]] = []  # bound plain-LDAP addresses (port 0 resolved)
        self.ldaps_addresses: list[tuple[str, int]] = []
        self.loaded_at: float | None = None
        self.builds = 0  # indexes built since start
        self.build_seconds = 0.0  # how long the last build took
        self.last_error = ""
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._reload_lock = asyncio.Lock()
        self._store: StoreFollower[Index] = StoreFollower(self.db_path, self._load, "ldap-index")

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.reload()
        loop = asyncio.get_running_loop()
        try:
            listen = self.settings.listen
            plain = await loop.create_server(lambda: _Connection(self, False), listen.host, listen.port,
                                             reuse_address=True, backlog=512)
            self._servers.append(plain)
            self.addresses = [s.getsockname()[:2] for s in plain.sockets]
            ldaps = self.settings.ldaps_listen
            if ldaps is not None and self.tls is not None:
                secure = await loop.create_server(lambda: _Connection(self, True), ldaps.host, ldaps.port,
                                                  ssl=self.tls, reuse_address=True, backlog=512,
                                                  ssl_handshake_timeout=10.0)
                self._servers.append(secure)
                self.ldaps_addresses = [s.getsockname()[:2] for s in secure.sockets]
        except OSError as exc:
            await self.stop()
            raise LdapServerError(f"ldap: cannot listen: {exc.strerror or exc}") from None
        self._tasks.append(asyncio.create_task(self._store.follow(self.settings.refresh_seconds,
                                                                  lambda: self.reload(force=False)),
                                               name="ldap-refresh"))
        self._tasks.append(asyncio.create_task(self._close_idle(), name="ldap-idle"))
        log.info("LDAP phonebook listening on %s%s with %d contacts", self.addresses,
                 f", LDAPS on {self.ldaps_addresses}" if self.ldaps_addresses else "", len(self.index.entries))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.abort()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._tasks.clear()
        await self._store.close()  # start() may be called again

    def refresh(self) -> None:
        """Ask for a check of the store now (e.g. after a sync pass); the index is rebuilt only if another
        connection committed since the last build (SQLite's `PRAGMA data_version`)."""
        self._store.wake()

    @property
    def index(self) -> Index:
        """The snapshot searches run against now."""
        return self.directory.index

    @property
    def searches(self) -> int:
        return self.directory.searches

    def health(self) -> dict[str, Any]:
        return {
            "contacts": len(self.index.entries),
            "mailboxes": len(self.index.mailboxes),
            "connections": len(self.connections),
            "searches": self.searches,
            "refused_searches": self.directory.refused_searches,
            "loaded_at_monotonic": self.loaded_at,
            "index_builds": self.builds,
            "index_build_seconds": round(self.build_seconds, 2),
            "index_mb": round(self.index.nbytes() / 1e6, 1),
            "last_error": self.last_error,
            "ok": not self.last_error,
        }

    # ---- the index --------------------------------------------------------------------------------

    async def reload(self, force: bool = True) -> bool:
        """Rebuild the index if the store changed (always with `force`); True when it was rebuilt."""
        async with self._reload_lock:
            try:
                index = await self._store.read(force)
            except (sqlite3.Error, OSError, PbxsyncError) as exc:
                self.last_error = f"cannot read contacts from {self.db_path}: {exc}"
                log.error("LDAP phonebook: %s", self.last_error)
                return False
            if index is None:
                return False
            self.directory.index = index
            # What is alive now is long-lived (the index's n-gram dictionaries, the daemon's state): keep it
            # out of the cyclic GC's scans, which would otherwise stall searches now and then.
            gc.freeze()  # no gc.collect() first: that would stall the event loop for the whole heap
            self.loaded_at = self.clock()
            self.builds += 1
            self.last_error = ""
            log.info("LDAP phonebook: %d contacts from %d mailboxes", len(index.entries), len(index.mailboxes))
            return True

    def _load(self, reader: sqlite3.Connection, force: bool) -> Index:
        started = time.monotonic()
        # The serving index lends the columns that come out the same (read-only, so safe on this thread).
        index = build_from_store(reader, self.settings.base_dn, self.forms, self.index)
        self.build_seconds = time.monotonic() - started
        return index

    async def _close_idle(self) -> None:
        idle = self.settings.idle_timeout_seconds
        while True:
            await asyncio.sleep(min(idle / 2, 30.0))
            cutoff = self.clock() - idle
            for conn in [c for c in self.connections if c.last_active < cutoff]:
                conn.abort()


class _Connection(asyncio.Protocol):
    """One client's transport: feeds its bytes to an `LdapSession` and writes back what it answers."""

    def __init__(self, server: LdapServer, ldaps: bool) -> None:
        self.server = server
        self.session = LdapSession(server.directory, tls_active=ldaps)
        self.transport: asyncio.Transport | None = None
        self.paused = False  # the client is not reading our responses
        self.upgrading = False  # StartTLS handshake in progress
        self.last_active = server.clock()
        self.counted = False  # holds a place in the server's connection counts
        self.spent = 0.0  # CPU seconds the request in progress has used (plugin.ldap.turns)

    @property
    def peer(self) -> str:
        return self.session.peer

    # ---- asyncio callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.session.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        server, settings = self.server, self.server.settings
        source = self.session.source
        if len(server.connections) >= settings.max_connections:
            refusal = f"connection limit ({settings.max_connections}) reached"
        elif server.per_source[source] >= settings.max_connections_per_source:
            refusal = f"connection limit per address ({settings.max_connections_per_source}) reached"
        else:
            server.connections.add(self)
            server.per_source[source] += 1
            self.counted = True
            return
        log.warning("LDAP: %s, refusing %s", refusal, self.peer)
        transport.write(notice_of_disconnection(ResultCode.BUSY, "too many connections"))
        self.session.close()
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.counted:
            self.counted = False
            source = self.session.source
            self.server.per_source[source] -= 1
            if self.server.per_source[source] <= 0:
                del self.server.per_source[source]
        self.session.close()  # drops the work in progress: nobody is left to read its answer

    def data_received(self, data: bytes) -> None:
        if self.session.closing:
            return
        self.last_active = self.server.clock()
        self.session.receive(data)
        self.process()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.process()

    def abort(self) -> None:
        self.session.close()
        if self.transport is not None:
            self.transport.abort()

    # ---- carrying the session's bytes -------------------------------------------------------------

    def process(self) -> None:
        """Ask for slices to answer what is buffered (see plugin.ldap.turns)."""
        if not self.session.closing:
            self.server.turns.want(self)

    @property
    def heavy(self) -> bool:
        return self.spent > HEAVY_SECONDS

    def step(self, slice_end: float) -> bool:
        """One slice of answering; True when more is ready to be answered on a later turn."""
        if self.paused or self.upgrading or self.session.closing:
            self.flush()
            return False
        started = time.perf_counter()
        more = self.session.step(slice_end)
        self.spent = time.perf_counter() - started + (self.spent if self.session.work is not None else 0.0)
        self.flush()
        resume_at = self.session.resume_at
        if resume_at is not None:  # a throttled bind: come back when its wait is over
            asyncio.get_running_loop().call_later(max(0.0, resume_at - self.server.clock()), self.process)
            return False
        return more and not self.paused

    def flush(self) -> None:
        session, transport = self.session, self.transport
        if transport is None or transport.is_closing():
            return
        data = session.data_to_send()
        if data:
            transport.write(data)
        if session.closing:
            transport.close()
        elif session.starting_tls and not self.upgrading:
            self.upgrading = True
            transport.pause_reading()  # the ClientHello is for the TLS layer, not for us
            asyncio.get_running_loop().create_task(self.start_tls())

    async def start_tls(self) -> None:
        assert self.transport is not None and self.server.tls is not None
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(self.transport, self, self.server.tls, server_side=True,
                                          ssl_handshake_timeout=10.0)
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("LDAP: StartTLS with %s failed: %s", self.peer, exc)
            self.abort()
            return
        if secure is None:
            self.abort()
            return
        self.transport = secure
        self.session.tls_started()
        self.upgrading = False
        self.process()
