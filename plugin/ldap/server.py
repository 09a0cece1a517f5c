"""The LDAP phonebook server: asyncio listeners, one protocol object per connection, index refresh.

Requests are answered synchronously inside `data_received` from the in-memory index (a search is a
bounded in-memory scan), which keeps a phone's connect-bind-search-unbind round trip cheap. Writes are
flow-controlled: when a client stops reading, we stop reading its requests. Any protocol error sends a
Notice of Disconnection and closes that one connection; limits bound every connection's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import sqlite3
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pbxsync.plugin.ldap.access import Access, View
from pbxsync.plugin.ldap.ber import BerError, frame_length, sequence, tlv
from pbxsync.plugin.ldap.build import build_from_store, build_index
from pbxsync.plugin.ldap.filters import Equality, filter_text
from pbxsync.plugin.ldap.index import Entry, Index, encode_attribute, normalise_dn
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import (
    BIND_RESPONSE,
    COMPARE_RESPONSE,
    EXTENDED_RESPONSE,
    OID_PAGED_RESULTS,
    OID_SORT_REQUEST,
    OID_START_TLS,
    SEARCH_DONE,
    SEARCH_ENTRY,
    AbandonRequest,
    BindRequest,
    CompareRequest,
    ExtendedRequest,
    Message,
    PagedResults,
    ResultCode,
    Scope,
    SearchRequest,
    SortKey,
    UnbindRequest,
    WriteRequest,
    decode_message,
    decode_paged_results,
    decode_sort_request,
    encode_paged_results,
    encode_sort_response,
    message_id_prefix,
    notice_of_disconnection,
    result_op,
    wrap,
)
from pbxsync.plugin.ldap.query import compile_filter
from pbxsync.plugin.ldap.schema import attribute_index
from pbxsync.plugin.ldap.search import Outcome, run_search, size_limit, sort_entries, truncate
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError, UserError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.ldap")

MAX_PAGED_SEARCHES = 8  # open paged-results cookies per connection
SUPPORTED_CONTROLS = (OID_PAGED_RESULTS, OID_SORT_REQUEST)
ABSOLUTE_TRUE_FALSE = "1.3.6.1.4.1.4203.1.5.3"  # RFC 4526 (&) and (|)


class LdapServerError(UserError):
    """The LDAP server cannot start (address in use, unreadable certificate)."""


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise LdapServerError(f"ldap.tls_cert/tls_key: cannot load {cert}: {exc}") from None
    return context


_SELECTIONS: dict[tuple[str, ...], tuple[int, ...] | None] = {}  # phones send a few attribute lists


def select_attributes(requested: tuple[str, ...]) -> tuple[int, ...] | None:
    """Positions of the requested attributes; None means every user attribute (empty list or `*`)."""
    try:
        return _SELECTIONS[requested]
    except KeyError:
        pass
    if not requested or "*" in requested:
        chosen: tuple[int, ...] | None = None
    else:  # "1.1", "+" and unknown names select nothing
        chosen = tuple(sorted({p for p in (attribute_index(a) for a in requested) if p is not None}))
    if len(requested) <= 32 and sum(len(a) for a in requested) <= 512:  # never remember hostile lists
        if len(_SELECTIONS) >= 256:
            _SELECTIONS.clear()
        _SELECTIONS[requested] = chosen
    return chosen


def entry_op(entry: Entry, selection: tuple[int, ...] | None, types_only: bool) -> bytes:
    return entry.index.encode(entry.eid, selection, types_only)


@dataclass(slots=True)
class _PagedSearch:
    signature: tuple[Any, ...]
    entries: list[Entry]
    position: int
    truncated: bool
    message_id: int


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
        self.access = Access(config)
        self.index: Index = build_index([], self.settings.base_dn, self.forms)
        self.tls: ssl.SSLContext | None = None
        if self.settings.tls_cert and self.settings.tls_key:
            self.tls = make_tls_context(self.settings.tls_cert, self.settings.tls_key)
        self.root_dse_op = self._root_dse()
        self.connections: set[_Connection] = set()
        self.addresses: list[tuple[str, int]] = []  # bound plain-LDAP addresses (port 0 resolved)
        self.ldaps_addresses: list[tuple[str, int]] = []
        self.loaded_at: float | None = None
        self.builds = 0  # indexes built since start
        self.build_seconds = 0.0  # how long the last build took
        self.last_error = ""
        self.searches = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._reload_lock = asyncio.Lock()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="ldap-index")
        self._wake = asyncio.Event()

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
        self._tasks.append(asyncio.create_task(self._watch_store(), name="ldap-refresh"))
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
        # All SQLite work runs on one worker thread, so this close queues behind a build still running.
        await asyncio.get_running_loop().run_in_executor(self._worker, self._close_reader)
        self._worker.shutdown(wait=False)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="ldap-index")  # start() may be called again

    def refresh(self) -> None:
        """Ask for a check of the store now (e.g. after a sync pass); the index is rebuilt only if another
        connection committed since the last build (SQLite's `PRAGMA data_version`)."""
        self._wake.set()

    def health(self) -> dict[str, Any]:
        return {
            "contacts": len(self.index.entries),
            "mailboxes": len(self.index.mailboxes),
            "connections": len(self.connections),
            "searches": self.searches,
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
                index = await asyncio.get_running_loop().run_in_executor(self._worker, self._load, force)
            except (sqlite3.Error, OSError, PbxsyncError) as exc:
                self.last_error = f"cannot read contacts from {self.db_path}: {exc}"
                log.error("LDAP phonebook: %s", self.last_error)
                await asyncio.get_running_loop().run_in_executor(self._worker, self._close_reader)
                return False
            if index is None:
                return False
            self.index = index
            # What is alive now is long-lived (the index's n-gram dictionaries, the daemon's state): keep it
            # out of the cyclic GC's scans, which would otherwise stall searches now and then.
            gc.freeze()  # no gc.collect() first: that would stall the event loop for the whole heap
            self.loaded_at = self.clock()
            self.builds += 1
            self.last_error = ""
            log.info("LDAP phonebook: %d contacts from %d mailboxes", len(index.entries), len(index.mailboxes))
            return True

    def _load(self, force: bool) -> Index | None:
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None,
                                           check_same_thread=False)
            self._reader.execute("PRAGMA busy_timeout = 5000")
        version = int(self._reader.execute("PRAGMA data_version").fetchone()[0])
        if not force and version == self._data_version:
            return None
        started = time.monotonic()
        index = build_from_store(self._reader, self.settings.base_dn, self.forms)
        self.build_seconds = time.monotonic() - started
        self._data_version = version
        return index

    def _close_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None

    async def _watch_store(self) -> None:
        interval = self.settings.refresh_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval if interval > 0 else None)
            self._wake.clear()
            await self.reload(force=False)

    async def _close_idle(self) -> None:
        idle = self.settings.idle_timeout_seconds
        while True:
            await asyncio.sleep(min(idle / 2, 30.0))
            cutoff = self.clock() - idle
            for conn in [c for c in self.connections if c.last_active < cutoff]:
                conn.abort()

    # ---- root DSE ---------------------------------------------------------------------------------

    def _root_dse(self) -> dict[str, tuple[str, ...]]:
        attrs: dict[str, tuple[str, ...]] = {
            "objectClass": ("top",),
            "namingContexts": (self.settings.base_dn,),
            "supportedLDAPVersion": ("2", "3"),
            "supportedControl": SUPPORTED_CONTROLS,
            "supportedFeatures": (ABSOLUTE_TRUE_FALSE,),
            "vendorName": ("pbxsync",),
        }
        if self.tls is not None:
            attrs["supportedExtension"] = (OID_START_TLS,)
        return attrs

    def root_dse_entry(self, requested: tuple[str, ...], types_only: bool) -> bytes:
        wanted = {a.lower() for a in requested}
        every = not wanted or "*" in wanted or "+" in wanted
        attrs = [encode_attribute(name, () if types_only else values) for name, values in self.root_dse_op.items()
                 if every or name.lower() in wanted]
        return tlv(SEARCH_ENTRY, b"\x04\x00" + sequence(*attrs))


class _Connection(asyncio.Protocol):
    def __init__(self, server: LdapServer, ldaps: bool) -> None:
        self.server = server
        self.tls_active = ldaps
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.view: View | None = server.access.anonymous_view()
        self.paused = False  # the client is not reading our responses
        self.upgrading = False  # StartTLS handshake in progress
        self.closing = False
        self.last_active = server.clock()
        self.paged: OrderedDict[bytes, _PagedSearch] = OrderedDict()
        self.peer = "?"

    # ---- asyncio callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if len(self.server.connections) >= self.server.settings.max_connections:
            log.warning("LDAP: connection limit (%d) reached, refusing %s", self.server.settings.max_connections,
                        self.peer)
            transport.write(notice_of_disconnection(ResultCode.BUSY, "too many connections"))
            self.closing = True
            transport.close()
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.paged.clear()
        self.buffer.clear()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = self.server.clock()
        self.buffer += data
        if len(self.buffer) > 2 * self.server.settings.max_request_bytes:  # piled up while paused
            self.protocol_error("too much unread input")
            return
        self.process()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.process()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # ---- request loop -----------------------------------------------------------------------------

    def process(self) -> None:
        limit = self.server.settings.max_request_bytes
        while not (self.paused or self.upgrading or self.closing):
            try:
                size = frame_length(self.buffer, limit)
            except BerError as exc:
                self.protocol_error(str(exc))
                return
            if size is None:
                return
            raw = bytes(self.buffer[:size])
            del self.buffer[:size]
            try:
                message = decode_message(raw)
            except BerError as exc:
                self.protocol_error(str(exc))
                return
            try:
                self.handle(message)
            except BerError as exc:
                self.protocol_error(str(exc))
                return
            except Exception:  # a bug must cost this connection only, never the server
                log.exception("LDAP: internal error answering %s", self.peer)
                self.disconnect(ResultCode.OPERATIONS_ERROR, "internal error")
                return

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def protocol_error(self, reason: str) -> None:
        log.info("LDAP: protocol error from %s: %s; closing", self.peer, reason)
        self.disconnect(ResultCode.PROTOCOL_ERROR, "protocol error")

    def disconnect(self, code: int, text: str) -> None:
        self.send(notice_of_disconnection(code, text))
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def handle(self, message: Message) -> None:
        op = message.op
        prefix = message_id_prefix(message.message_id)
        if isinstance(op, SearchRequest):
            self.search(message, op, prefix)
        elif isinstance(op, BindRequest):
            self.paged.clear()  # a bind abandons outstanding operations
            outcome = self.server.access.bind(op.version, op.name, op.password)
            self.view = outcome.view
            if outcome.code != ResultCode.SUCCESS:
                log.info("LDAP: bind as %r from %s refused: %s", op.name[:200], self.peer, outcome.diagnostic)
            self.send(wrap(prefix, result_op(BIND_RESPONSE, outcome.code, outcome.diagnostic)))
        elif isinstance(op, UnbindRequest):
            self.closing = True
            if self.transport is not None:
                self.transport.close()
        elif isinstance(op, AbandonRequest):
            for cookie, paged in list(self.paged.items()):
                if paged.message_id == op.target_id:
                    del self.paged[cookie]
        elif isinstance(op, ExtendedRequest):
            self.extended(op, prefix)
        elif isinstance(op, CompareRequest):
            self.compare(op, prefix)
        elif isinstance(op, WriteRequest):
            code = (ResultCode.UNWILLING_TO_PERFORM if self.view is not None and self.view.authenticated
                    else ResultCode.INSUFFICIENT_ACCESS_RIGHTS)
            self.send(wrap(prefix, result_op(op.response_tag, code, "the phonebook is read-only")))

    def extended(self, op: ExtendedRequest, prefix: bytes) -> None:
        if op.oid != OID_START_TLS:
            self.send(wrap(prefix, result_op(EXTENDED_RESPONSE, ResultCode.PROTOCOL_ERROR,
                                             f"unsupported extended operation {op.oid[:100]}")))
            return
        if self.server.tls is None:
            code, text = ResultCode.PROTOCOL_ERROR, "StartTLS is not configured"
        elif self.tls_active:
            code, text = ResultCode.OPERATIONS_ERROR, "TLS is already active"
        elif self.buffer:
            code, text = ResultCode.OPERATIONS_ERROR, "requests are outstanding"
        else:
            code, text = ResultCode.SUCCESS, ""
        extra = b"\x8a" + bytes([len(OID_START_TLS)]) + OID_START_TLS.encode()
        self.send(wrap(prefix, result_op(EXTENDED_RESPONSE, code, text, extra=extra)))
        if code == ResultCode.SUCCESS:
            self.upgrading = True
            if self.transport is not None:
                self.transport.pause_reading()  # the ClientHello is for the TLS layer, not for us
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
        self.tls_active = True
        self.upgrading = False
        self.process()

    def compare(self, op: CompareRequest, prefix: bytes) -> None:
        index = self.server.index
        key = normalise_dn(op.dn)
        entry = index.base if key == index.base_key else None
        found = index.find(key) if entry is None else None
        if found is not None:
            entry = index.entries[found]
        if entry is None or self.view is None or not (
                self.view.mailboxes is None or entry.mailbox in self.view.mailboxes or entry.eid < 0):
            self.send(wrap(prefix, result_op(COMPARE_RESPONSE, ResultCode.NO_SUCH_OBJECT, "no such entry")))
            return
        if attribute_index(op.attr) is None:
            self.send(wrap(prefix, result_op(COMPARE_RESPONSE, ResultCode.UNDEFINED_ATTRIBUTE_TYPE, "")))
            return
        result = compile_filter(Equality(op.attr, op.value), self.server.forms)(entry)
        code = ResultCode.COMPARE_TRUE if result else ResultCode.COMPARE_FALSE
        self.send(wrap(prefix, result_op(COMPARE_RESPONSE, code)))

    # ---- search -----------------------------------------------------------------------------------

    def search(self, message: Message, req: SearchRequest, prefix: bytes) -> None:
        server = self.server
        server.searches += 1
        if req.scope == Scope.BASE and not req.base.strip():
            self.send(wrap(prefix, server.root_dse_entry(req.attributes, req.types_only))
                      + wrap(prefix, result_op(SEARCH_DONE, ResultCode.SUCCESS)))
            return
        if self.view is None:
            self.done(prefix, ResultCode.INSUFFICIENT_ACCESS_RIGHTS, "anonymous access is disabled; bind first")
            return
        paging: PagedResults | None = None
        sort_keys: tuple[SortKey, ...] | None = None
        sort_critical = False
        for control in message.controls:
            try:
                if control.oid == OID_PAGED_RESULTS:
                    paging = decode_paged_results(control.value)
                elif control.oid == OID_SORT_REQUEST:
                    sort_keys = decode_sort_request(control.value)
                    sort_critical = control.critical
                elif control.critical:
                    self.done(prefix, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION,
                              f"unsupported critical control {control.oid[:100]}")
                    return
            except BerError:
                self.done(prefix, ResultCode.PROTOCOL_ERROR, f"malformed control value {control.oid[:100]}")
                return
        if paging is not None:
            self.paged_search(message, req, prefix, paging, sort_keys, sort_critical)
            return
        outcome = self.run(req, collect_all=sort_keys is not None)
        response_controls = b""
        if sort_keys is not None and outcome.code == ResultCode.SUCCESS:
            sort_code, bad_attr = sort_entries(server.index, outcome.entries, sort_keys)
            if sort_code != ResultCode.SUCCESS and sort_critical:
                self.done(prefix, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION, f"cannot sort by {bad_attr[:100]}")
                return
            response_controls = encode_sort_response(sort_code, bad_attr)
            truncate(outcome, size_limit(req.size_limit, server.settings.size_limit))
        self.send_entries(prefix, req, outcome.entries, outcome, response_controls)

    def run(self, req: SearchRequest, collect_all: bool) -> Outcome:
        server = self.server
        assert self.view is not None
        return run_search(server.index, req, self.view.mailboxes, server.forms,
                          size_cap=server.settings.size_limit, time_cap=server.settings.time_limit_seconds,
                          now=server.clock, collect_all=collect_all)

    def paged_search(self, message: Message, req: SearchRequest, prefix: bytes, paging: PagedResults,
                     sort_keys: tuple[SortKey, ...] | None, sort_critical: bool) -> None:
        signature = (req.base, req.scope, filter_text(req.filter), req.attributes, req.types_only, sort_keys)
        if paging.cookie:
            state = self.paged.pop(paging.cookie, None)
            if state is None or state.signature != signature:
                self.done(prefix, ResultCode.UNWILLING_TO_PERFORM, "unknown or stale paged results cookie")
                return
            if paging.size == 0:  # the client abandons the paged search
                self.done(prefix, ResultCode.SUCCESS, "", encode_paged_results(0, b""))
                return
        else:
            outcome = self.run(req, collect_all=True)
            sort_control = b""
            if sort_keys is not None and outcome.code == ResultCode.SUCCESS:
                sort_code, bad_attr = sort_entries(self.server.index, outcome.entries, sort_keys)
                if sort_code != ResultCode.SUCCESS and sort_critical:
                    self.done(prefix, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION, f"cannot sort by {bad_attr[:100]}")
                    return
                sort_control = encode_sort_response(sort_code, bad_attr)
            if outcome.code != ResultCode.SUCCESS:
                self.send_entries(prefix, req, outcome.entries, outcome, sort_control)
                return
            limit = size_limit(req.size_limit, self.server.settings.size_limit)
            truncated = bool(limit) and len(outcome.entries) > limit
            entries = outcome.entries[:limit] if truncated else outcome.entries
            state = _PagedSearch(signature, entries, 0, truncated, message.message_id)
            if paging.size == 0:
                self.done(prefix, ResultCode.SUCCESS, "", encode_paged_results(len(entries), b"") + sort_control)
                return
        page_size = paging.size or len(state.entries)
        page = state.entries[state.position:state.position + page_size]
        state.position += len(page)
        state.message_id = message.message_id
        finished = state.position >= len(state.entries)
        cookie = b""
        if not finished:
            cookie = secrets.token_bytes(8)
            self.paged[cookie] = state
            while len(self.paged) > MAX_PAGED_SEARCHES:
                self.paged.popitem(last=False)
        outcome = Outcome(entries=page)
        if finished and state.truncated:
            outcome.code, outcome.diagnostic = ResultCode.SIZE_LIMIT_EXCEEDED, "size limit exceeded"
        controls = encode_paged_results(len(state.entries), cookie)
        if sort_keys is not None:
            controls += encode_sort_response(ResultCode.SUCCESS)
        self.send_entries(prefix, req, page, outcome, controls)

    def send_entries(self, prefix: bytes, req: SearchRequest, entries: list[Entry], outcome: Outcome,
                     controls: bytes) -> None:
        selection = select_attributes(req.attributes)
        parts: list[bytes] = []
        append = parts.append
        if req.types_only:
            for e in entries:
                append(wrap(prefix, entry_op(e, selection, True)))
        else:
            parts = self.server.index.messages(entries, selection, prefix)
            append = parts.append
        append(wrap(prefix, result_op(SEARCH_DONE, outcome.code, outcome.diagnostic, outcome.matched_dn),
                          controls))
        self.send(b"".join(parts))

    def done(self, prefix: bytes, code: int, text: str, controls: bytes = b"") -> None:
        self.send(wrap(prefix, result_op(SEARCH_DONE, code, text), controls))
