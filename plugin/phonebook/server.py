"""The phonebook HTTP server: its state (snapshot, tokens, rendered books), reloads and lifecycle.

Requests are answered by plugin.phonebook.handler from memory. The store is read in a worker thread
(plugin.store_follower, as the LDAP server reads it) when another connection committed since the last
read (polled every `[phonebook] refresh_seconds` and on `refresh()`) and a contact or token changed (a
calendar pass commits too: the migration's change counter tells them apart with one read), so a thousand
phones polling cost no database work at all.
The daemon also calls `refresh()` right after a sync pass that changed contacts (plugin.phonebook.refresh),
so the books are fresh at once; the polling stays for what no pass reports (a new phone token).
What is rendered is kept within `[phonebook] cache_mb`, half each: every contact's element per listing
format (plugin.phonebook.fragments: a listing is rendered as a join of those bytes) and, by ETag in a
bounded LRU, every document sent: an unchanged book is served as bytes, even across a re-read.
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
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pbxsync.plugin.ldap.access import Access
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.throttle import BindGuard
from pbxsync.plugin.phonebook.book import Snapshot, read_snapshot
from pbxsync.plugin.phonebook.entries import Dialer
from pbxsync.plugin.phonebook.fragments import Fragments
from pbxsync.plugin.phonebook.tokens import read_tokens
from pbxsync.plugin.store_follower import StoreFollower
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError, UserError
from pbxsync.sync.http_site import Limits, Site, start_site, tls_context
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.phonebook")

# Phones fetch and go. Keep-alive: a phone or a DECT base asking for several pages reuses its connection;
# a Snom POST carries a small form. Up to 64 phones behind one address (a DECT base, a NAT).
LIMITS = Limits(max_connections=512, per_source=64, keep_alive=True, max_body_bytes=16 * 1024)


# Counts every insert, update and delete of a contact or token (triggers of the phonebook migration).
_CHANGES_SQL = "SELECT changes FROM phonebook_changes"


class PhonebookServerError(UserError):
    """The phonebook cannot start (no listen address, address in use, unreadable certificate)."""


class RenderCache:
    """Documents by ETag, least recently used dropped first once over `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        body = self.items.get(key)
        if body is not None:
            self.items.move_to_end(key)
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.limit or key in self.items:
            return
        self.items[key] = body
        self.size += len(body)
        while self.size > self.limit:
            _, dropped = self.items.popitem(last=False)
            self.size -= len(dropped)


class PhonebookServer:
    """Construct, `await start()`, `await stop()`; `refresh()` after a sync pass."""

    def __init__(self, config: Config, store: Store | str | os.PathLike[str], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        settings = config.phonebook
        if settings.listen is None:
            raise PhonebookServerError("phonebook.listen: not set (the phonebook is off)")
        self.config = config
        self.settings = settings
        self.listen = settings.listen
        self.db_path = store.path if isinstance(store, Store) else os.fspath(store)
        self.clock = clock
        self.access = Access(config)
        self.binds = BindGuard()
        self.dialer = Dialer(NumberForms(config.sync.default_region), settings.number_format, settings.dial_prefix)
        # What else shapes a document besides the book: a changed setting must change every ETag.
        self.settings_key = f"{settings.number_format}\0{settings.dial_prefix}\0{config.sync.default_region}"
        self.tls: ssl.SSLContext | None = None
        if settings.tls_cert and settings.tls_key:
            self.tls = tls_context(settings.tls_cert, settings.tls_key, "phonebook.tls_cert/tls_key")
        self.snapshot = Snapshot()
        self.tokens: dict[str, str] = {}  # token digest -> extension
        self.cache = RenderCache(settings.cache_mb * 1024 * 1024 // 2)
        self.fragments = Fragments(settings.cache_mb * 1024 * 1024 // 2)
        self.addresses: list[tuple[str, int]] = []
        self.requests = 0
        self.not_modified = 0
        self.loads = 0  # snapshots read since start
        self.loaded_at: float | None = None
        self.last_error = ""
        self._site: Site | None = None
        self._changes: int | None = None
        self._store: StoreFollower[tuple[Snapshot, dict[str, str]]] = StoreFollower(self.db_path, self._load,
                                                                                  "phonebook")
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        from pbxsync.plugin.phonebook.handler import make_app  # the handler reads this server's state

        await self.reload()
        try:
            self._site = await start_site(make_app(self), self.listen, limits=LIMITS, tls=self.tls)
        except OSError as exc:
            await self.stop()
            raise PhonebookServerError(f"phonebook: cannot listen on {self.listen}: {exc.strerror or exc}") from None
        bound = self._site.listen
        self.addresses = [(bound.host, bound.port)] if bound is not None else []
        self._watcher = asyncio.create_task(self._store.follow(self.settings.refresh_seconds,
                                                               lambda: self.reload(force=False)),
                                            name="phonebook-refresh")
        log.info("XML phonebook listening on %s%s with %d contacts", self.addresses, " (HTTPS)" if self.tls else "",
                 self.snapshot.size)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._site is not None:
            await self._site.close()
            self._site = None
        await self._store.close()  # start() may be called again

    def refresh(self) -> None:
        """Check the store now (a re-read happens only if it changed)."""
        self._store.wake()

    def health(self) -> dict[str, Any]:
        return {"listen": ", ".join(f"{h}:{p}" for h, p in self.addresses), "contacts": self.snapshot.size,
                "tokens": len(self.tokens), "requests": self.requests, "not_modified": self.not_modified,
                "loads": self.loads,
                "cache_mb": round((self.cache.size + self.fragments.size) / 1e6, 1), "last_error": self.last_error,
                "ok": not self.last_error}

    # ---- reading the store ------------------------------------------------------------------------

    async def reload(self, force: bool = True) -> bool:
        """Re-read contacts and tokens if the store changed (always with `force`); True when re-read."""
        async with self._lock:
            try:
                loaded = await self._store.read(force)
            except (sqlite3.Error, OSError, PbxsyncError) as exc:
                self.last_error = f"cannot read contacts from {self.db_path}: {exc}"
                log.error("XML phonebook: %s", self.last_error)
                return False
            if loaded is None:
                return False
            # The render cache stays: it is keyed by ETag, a digest of the content, so what an unchanged
            # book rendered is still right, and only the books a change touched are rendered again. The
            # fragments go: kept, they would keep the old snapshot's strings alive beside the new ones.
            self.snapshot, self.tokens = loaded
            self.fragments.clear()
            # The snapshot lives until the next change: keep it out of the cyclic GC's scans, which would
            # otherwise stall requests now and then (as plugin.ldap.server does for its index).
            gc.freeze()
            self.loaded_at = self.clock()
            self.loads += 1
            self.last_error = ""
            return True

    def _load(self, reader: sqlite3.Connection, force: bool) -> tuple[Snapshot, dict[str, str]] | None:
        # The counter first: a change committed while the rows are read makes the next check read again.
        changes = int(reader.execute(_CHANGES_SQL).fetchone()[0])
        if not force and changes == self._changes:
            return None
        # The serving snapshot lends the entries that come out the same (read-only, so safe on this thread).
        loaded = read_snapshot(reader, self.dialer, self.snapshot), read_tokens(reader)
        self._changes = changes
        return loaded
