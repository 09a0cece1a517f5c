"""One LDAP connection's protocol state, without IO: bytes in, decoded requests answered, bytes out.

`LdapSession.receive(data)` buffers what a client sent; `handle_next()` answers the next complete request
from the shared `Directory` (the current index snapshot, who may bind, limits); `data_to_send()` hands
the encoded responses to whatever transport carries them. The server uses `step(slice_end)` instead:
it answers in time slices (a search is a generator that yields at checkpoints) and reports a throttled
bind's wait in `resume_at`, so that one client's request never holds the loop for long. The session keeps
the bind state (`view`), paged-results cookies and the per-connection limits. It never reads a socket,
sleeps or starts a task: the transport (`plugin.ldap.server`) watches `closing` (close after sending what is out) and
`starting_tls` (run the TLS handshake, then `tls_started()`), and decides when to go on reading.

Any protocol error queues a Notice of Disconnection and closes the session; a bug answering one request
costs that connection only (operationsError), never the server.

Over 400 lines on purpose: every request handler reads and changes the same connection state (bind view,
paged cookies, the work in progress and its wait); split across modules that one state machine would be
harder to follow. What sessions share lives in plugin.ldap.directory.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from pbxsync.plugin.ldap.access import View
from pbxsync.plugin.ldap.ber import BerError, frame_length
from pbxsync.plugin.ldap.cost import refusal
from pbxsync.plugin.ldap.directory import Directory, entry_op, select_attributes
from pbxsync.plugin.ldap.filters import Equality, filter_text
from pbxsync.plugin.ldap.index import Entry, normalise_dn
from pbxsync.plugin.ldap.protocol import (
    BIND_RESPONSE,
    COMPARE_RESPONSE,
    EXTENDED_RESPONSE,
    OID_PAGED_RESULTS,
    OID_SORT_REQUEST,
    OID_START_TLS,
    SEARCH_DONE,
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
from pbxsync.plugin.ldap.search import Outcome, Steps, search_steps, size_limit, sort_entries, truncate

log = logging.getLogger("pbxsync.ldap")

# A request being answered: yields None at checkpoints, or a time (the directory's clock) to wait until.
Work = Generator[float | None, None, None]

MAX_PAGED_SEARCHES = 8  # open paged-results cookies per connection


@dataclass(slots=True)
class _PagedSearch:
    signature: tuple[Any, ...]
    entries: list[Entry]
    position: int
    truncated: bool
    message_id: int


class LdapSession:
    """One connection's LDAP state machine (see the module docstring for the transport's side)."""

    def __init__(self, directory: Directory, *, tls_active: bool = False, peer: str = "?") -> None:
        self.directory = directory
        self.tls_active = tls_active
        self.peer = peer  # for logs
        self.buffer = bytearray()
        self.view: View | None = directory.access.anonymous_view()
        self.paged: OrderedDict[bytes, _PagedSearch] = OrderedDict()
        self.closing = False  # no further requests; the transport closes once the output is sent
        self.starting_tls = False  # StartTLS accepted: the next bytes are a TLS handshake, not LDAP
        self.work: Work | None = None  # the request being answered, when it did not finish in one slice
        self.resume_at: float | None = None  # the work waits until the directory's clock reaches this
        self.failed_binds = 0
        self._out: list[bytes] = []

    @property
    def source(self) -> str:
        """The peer's address without its port: throttling and connection caps count per source."""
        host, _, port = self.peer.rpartition(":")
        return host if host and port.isdigit() else self.peer

    # ---- the transport's side -------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Bytes from the client, buffered until `handle_next` answers them."""
        if self.closing:
            return
        self.buffer += data
        if len(self.buffer) > 2 * self.directory.settings.max_request_bytes:  # piled up while paused
            self.protocol_error("too much unread input")

    def handle_next(self) -> bool:
        """Answer the next complete request to its end, throttling waits included (for tests and tools;
        the server uses `step`); False when there is none (or no more will be read)."""
        if self.work is None and not self._start_next():
            return False
        while self.work is not None:
            self._advance(float("inf"), time.perf_counter)
            self.resume_at = None
        return True

    def step(self, slice_end: float, timer: Callable[[], float] = time.perf_counter) -> bool:
        """Answer requests until `timer()` passes `slice_end`; True when there is more to do: call again
        on a later loop turn, or once the directory's clock reaches `resume_at` when that is set."""
        while True:
            if self.resume_at is not None:
                if self.directory.clock() < self.resume_at:
                    return True
                self.resume_at = None
            if self.work is None and not self._start_next():
                return False
            if self.work is not None and not self._advance(slice_end, timer):
                return True
            if timer() >= slice_end:
                return self.pending()

    def pending(self) -> bool:
        """Whether work is left: a request in progress or a complete one buffered."""
        if self.closing or self.starting_tls:
            return False
        if self.work is not None:
            return True
        try:
            return frame_length(self.buffer, self.directory.settings.max_request_bytes) is not None
        except BerError:
            return True  # the next call reports it

    def _advance(self, slice_end: float, timer: Callable[[], float]) -> bool:
        """Run the current work until the slice ends or it waits (False) or it finishes (True)."""
        assert self.work is not None
        try:
            while True:
                wait = next(self.work)
                if wait is not None:
                    self.resume_at = wait
                    return False
                if timer() >= slice_end:
                    return False
        except StopIteration:
            pass
        except BerError as exc:
            self.protocol_error(str(exc))
        except Exception:  # a bug must cost this connection only, never the server
            log.exception("LDAP: internal error answering %s", self.peer)
            self.disconnect(ResultCode.OPERATIONS_ERROR, "internal error")
        self.work = None
        return True

    def _start_next(self) -> bool:
        """Decode the next complete request and answer it, or start its work; False when there is none."""
        if self.starting_tls or self.closing:
            return False
        try:
            size = frame_length(self.buffer, self.directory.settings.max_request_bytes)
        except BerError as exc:
            self.protocol_error(str(exc))
            return False
        if size is None:
            return False
        raw = bytes(self.buffer[:size])
        del self.buffer[:size]
        try:
            message = decode_message(raw)
        except BerError as exc:
            self.protocol_error(str(exc))
            return False
        try:
            self.work = self.handle(message)
        except BerError as exc:
            self.protocol_error(str(exc))
            return False
        except Exception:  # a bug must cost this connection only, never the server
            log.exception("LDAP: internal error answering %s", self.peer)
            self.disconnect(ResultCode.OPERATIONS_ERROR, "internal error")
            return False
        return True

    def data_to_send(self) -> bytes:
        """Everything answered since the last call, in order."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def tls_started(self) -> None:
        """The transport finished the StartTLS handshake: requests flow again, now protected."""
        self.tls_active = True
        self.starting_tls = False

    def close(self) -> None:
        """The connection is gone: forget its state and drop the work in progress."""
        self.closing = True
        self.paged.clear()
        self.buffer.clear()
        self.work = None
        self.resume_at = None

    # ---- answering ------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self.closing:
            self._out.append(data)

    def protocol_error(self, reason: str) -> None:
        log.info("LDAP: protocol error from %s: %s; closing", self.peer, reason)
        self.disconnect(ResultCode.PROTOCOL_ERROR, "protocol error")

    def disconnect(self, code: int, text: str) -> None:
        self.send(notice_of_disconnection(code, text))
        self.closing = True

    def handle(self, message: Message) -> Work | None:
        """Answer `message`, or return the work that answers it (searches, throttled binds)."""
        op = message.op
        prefix = message_id_prefix(message.message_id)
        if isinstance(op, SearchRequest):
            return self.search(message, op, prefix)
        if isinstance(op, BindRequest):
            self.paged.clear()  # a bind abandons outstanding operations
            return self.bind(op, prefix)
        if isinstance(op, UnbindRequest):
            self.closing = True
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
        return None

    def bind(self, op: BindRequest, prefix: bytes) -> Work:
        """Check a bind; a password attempt waits first while this source guessed wrong (see BindGuard)."""
        guard, clock = self.directory.binds, self.directory.clock
        guarded = bool(op.password)  # anonymous binds guess nothing
        if guarded:
            wait = guard.admit(self.source, op.name, clock())
            if wait is None:
                self.disconnect(ResultCode.BUSY, "too many failed binds; try again later")
                return
            if wait > 0:
                yield clock() + wait
        outcome = self.directory.access.bind(op.version, op.name, op.password)
        self.view = outcome.view
        ok = outcome.code == ResultCode.SUCCESS
        if guarded:
            guard.record(self.source, op.name, ok, clock())
        if not ok:
            self.failed_binds += 1
            guard.log_refusal(self.source, op.name, outcome.diagnostic, clock())
        self.send(wrap(prefix, result_op(BIND_RESPONSE, outcome.code, outcome.diagnostic)))
        if not ok and self.failed_binds >= self.directory.settings.max_bind_failures > 0:
            self.disconnect(ResultCode.UNWILLING_TO_PERFORM, "too many failed binds on this connection")

    def extended(self, op: ExtendedRequest, prefix: bytes) -> None:
        if op.oid != OID_START_TLS:
            self.send(wrap(prefix, result_op(EXTENDED_RESPONSE, ResultCode.PROTOCOL_ERROR,
                                             f"unsupported extended operation {op.oid[:100]}")))
            return
        if not self.directory.start_tls:
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
            self.starting_tls = True

    def compare(self, op: CompareRequest, prefix: bytes) -> None:
        index = self.directory.index
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
        result = compile_filter(Equality(op.attr, op.value), self.directory.forms)(entry)
        code = ResultCode.COMPARE_TRUE if result else ResultCode.COMPARE_FALSE
        self.send(wrap(prefix, result_op(COMPARE_RESPONSE, code)))

    # ---- search ---------------------------------------------------------------------------------------

    def search(self, message: Message, req: SearchRequest, prefix: bytes) -> Work:
        directory = self.directory
        directory.searches += 1
        if req.scope == Scope.BASE and not req.base.strip():
            self.send(wrap(prefix, directory.root_dse_entry(req.attributes, req.types_only))
                      + wrap(prefix, result_op(SEARCH_DONE, ResultCode.SUCCESS)))
            return
        if self.view is None:
            self.done(prefix, ResultCode.INSUFFICIENT_ACCESS_RIGHTS, "anonymous access is disabled; bind first")
            return
        settings = directory.settings
        refused = refusal(req.filter, directory.index, settings.max_filter_terms, settings.max_search_cost)
        if refused is not None:
            directory.refused_searches += 1
            self.done(prefix, refused.code, refused.diagnostic)
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
            yield from self.paged_search(message, req, prefix, paging, sort_keys, sort_critical)
            return
        outcome = yield from self.run(req, collect_all=sort_keys is not None)
        response_controls = b""
        if sort_keys is not None and outcome.code == ResultCode.SUCCESS:
            sort_code, bad_attr = sort_entries(directory.index, outcome.entries, sort_keys)
            if sort_code != ResultCode.SUCCESS and sort_critical:
                self.done(prefix, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION, f"cannot sort by {bad_attr[:100]}")
                return
            response_controls = encode_sort_response(sort_code, bad_attr)
            truncate(outcome, size_limit(req.size_limit, directory.settings.size_limit))
        self.send_entries(prefix, req, outcome.entries, outcome, response_controls)

    def run(self, req: SearchRequest, collect_all: bool) -> Steps:
        directory = self.directory
        assert self.view is not None
        return search_steps(directory.index, req, self.view.mailboxes, directory.forms,
                            size_cap=directory.settings.size_limit, time_cap=directory.settings.time_limit_seconds,
                            now=directory.clock, collect_all=collect_all)

    def paged_search(self, message: Message, req: SearchRequest, prefix: bytes, paging: PagedResults,
                     sort_keys: tuple[SortKey, ...] | None, sort_critical: bool) -> Work:
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
            outcome = yield from self.run(req, collect_all=True)
            sort_control = b""
            if sort_keys is not None and outcome.code == ResultCode.SUCCESS:
                sort_code, bad_attr = sort_entries(self.directory.index, outcome.entries, sort_keys)
                if sort_code != ResultCode.SUCCESS and sort_critical:
                    self.done(prefix, ResultCode.UNAVAILABLE_CRITICAL_EXTENSION, f"cannot sort by {bad_attr[:100]}")
                    return
                sort_control = encode_sort_response(sort_code, bad_attr)
            if outcome.code != ResultCode.SUCCESS:
                self.send_entries(prefix, req, outcome.entries, outcome, sort_control)
                return
            limit = size_limit(req.size_limit, self.directory.settings.size_limit)
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
            parts = self.directory.index.messages(entries, selection, prefix)
            append = parts.append
        append(wrap(prefix, result_op(SEARCH_DONE, outcome.code, outcome.diagnostic, outcome.matched_dn),
                          controls))
        self.send(b"".join(parts))

    def done(self, prefix: bytes, code: int, text: str, controls: bytes = b"") -> None:
        self.send(wrap(prefix, result_op(SEARCH_DONE, code, text), controls))
