"""Start an aiohttp application on a TCP address or a Unix socket, with the limits every listener needs.

Every HTTP listener of the daemon (control, metrics, the Graph webhook, the web portal, the phones' XML
phonebook) starts here, so a stuck or hostile client is held to the same rules everywhere:
- at most `max_connections` open connections in all and `per_source` from one address: over either cap a
  connection gets 503 at once and is closed, holding no descriptor (FastAGI and LDAP share the daemon's);
- the request line and each header line at most `max_header_bytes` (431), a body at most `max_body_bytes`
  (413), no chunked bodies unless `chunked` (411), a body cut short by the client is 400;
- `request_deadline` seconds to send a whole request (headers and body) and, after an answer, to read it
  and send the next one: a slowloris gets 408 and idle connections end, quietly;
- `keep_alive` off (the default) answers one request per connection, which is all the CLI and Graph need.
`refusal_status` replaces every refusal's code (not the 503) by one: the control endpoint has always
answered 400 to a malformed request. aiohttp parses; this module only counts, times and refuses.

This lives in sync/ because sync/ must not import plugin/ and the Graph webhook receiver needs it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from pbxsync.sync.errors import UserError
from pbxsync.sync.listen import ListenAddress

log = logging.getLogger("pbxsync.http")


class HttpSiteError(UserError):
    """A listener cannot start (unreadable certificate)."""


@dataclass(frozen=True)
class Limits:
    max_connections: int = 128
    per_source: int = 64  # every local client shares 127.0.0.1, so this only stops a remote flood
    request_deadline: float = 10.0
    max_header_bytes: int = 16 * 1024  # the request line and each header line
    max_body_bytes: int = 64 * 1024
    chunked: bool = False
    keep_alive: bool = False
    refusal_status: int | None = None  # None: the precise code of each refusal (408, 411, 413, 431, 400)

    def status(self, precise: HTTPStatus) -> int:
        return self.refusal_status or precise.value


def tls_context(cert: str, key: str, what: str, error: type[UserError] = HttpSiteError) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later), also LDAP's; `what` names the config keys in the `error`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise error(f"{what}: cannot load {cert}: {exc}") from None
    return context


# On every refusal; answers that carry a body of ours (Graph's validation token) want them too.
SAFE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
SERVER = "pbxsync"  # instead of aiohttp's "Python/3.x aiohttp/3.y": versions tell an attacker what to try


async def _name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER


def _plain(status: int) -> bytes:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Refused"
    return (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n"
            f"Connection: close\r\nServer: {SERVER}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "\r\n").encode("latin-1")


class _Connections:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.by_source: dict[str, int] = {}
        self.busy: set[object] = set()  # connections whose request a handler is working on

    def admit(self, source: str) -> bool:
        if self.open >= self.limits.max_connections or self.by_source.get(source, 0) >= self.limits.per_source:
            return False
        self.open += 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        return True

    def release(self, source: str) -> None:
        self.open -= 1
        left = self.by_source[source] - 1
        if left:
            self.by_source[source] = left
        else:
            del self.by_source[source]


class _LimitedHandler(RequestHandler):
    """aiohttp's connection protocol plus the caps and the deadline (aiohttp has no request deadline).

    The deadline runs while the connection waits for a request to be complete (from connect, and again
    once an answer is handed to aiohttp); `_limits_middleware` stops it when it has read the body."""

    __slots__ = ("_body_reader", "_counted", "_deadline", "_limits", "_peer_closed", "_source", "_started")

    def __init__(self, manager: web.Server, limits: Limits, counted: _Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._counted = counted
        self._source = ""
        self._deadline: asyncio.TimerHandle | None = None
        self._started = False  # bytes of a request arrived since the last answer
        self._peer_closed = False
        self._body_reader: web.BaseRequest | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "local"  # a Unix socket has no address
        if not self._counted.admit(source):
            assert isinstance(transport, asyncio.WriteTransport)
            with contextlib.suppress(ConnectionError, OSError):
                transport.write(_plain(HTTPStatus.SERVICE_UNAVAILABLE))
            transport.close()  # no drain, no wait: the descriptor goes as soon as the 503 is with the kernel
            return
        self._source = source
        super().connection_made(transport)
        self.arm_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._source:
            return  # refused at connect: aiohttp never saw it
        self.disarm_deadline()
        self._counted.busy.discard(self)
        self._counted.release(self._source)
        self._source = ""
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._source:
            return
        self._started = True
        super().data_received(data)

    def eof_received(self) -> bool:  # type: ignore[override]  # aiohttp's returns None: close at once
        """Keep the transport open for the answer: the old CLI and curl send their request, then close their
        writing side. A body cut short by that close fails at once instead of at the deadline."""
        self._peer_closed = True
        reader = self._body_reader
        if reader is not None and not reader.content.is_eof():
            reader.content.set_exception(ConnectionResetError("the client closed before the whole body"))
        if self.transport is None:
            return False
        if not self._started:
            self.transport.close()  # closed while idle: nothing to answer
        return self.transport.get_extra_info("sslcontext") is None  # TLS cannot stay half open

    def arm_deadline(self) -> None:
        self.disarm_deadline()
        self._deadline = self._loop.call_later(self._limits.request_deadline, self._deadline_passed)

    def disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def request_read(self, request: web.BaseRequest | None) -> None:
        """The middleware has a whole request (None) or is reading this one's body."""
        self._body_reader = request
        if request is None:
            self.disarm_deadline()
            self._started = False
            self._counted.busy.add(self)

    def cut_short(self, request: web.BaseRequest) -> bool:
        """The client closed its side before this request's body was whole: it never will be."""
        return self._peer_closed and not request.content.is_eof()

    def answered(self) -> None:
        self._counted.busy.discard(self)
        self.arm_deadline()

    def _deadline_passed(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None:
            return
        assert isinstance(transport, asyncio.WriteTransport)
        if transport.get_write_buffer_size():
            transport.abort()  # a client that does not read its answer does not keep the descriptor
            return
        if self._started:
            with contextlib.suppress(ConnectionError, OSError):
                transport.write(_plain(self._limits.status(HTTPStatus.REQUEST_TIMEOUT)))
        transport.close()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp cannot parse: one debug line (hostile input is no error of ours), no traceback."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong):
            status = self._limits.status(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        else:
            status = self._limits.status(HTTPStatus(status))
        # the parser's message may quote the request line, and a URL may carry a phonebook token: not logged
        log.debug("refused a malformed request from %s: HTTP %d (%s)", self._source, status,
                  type(exc).__name__ if exc is not None else "unparsable")
        response = web.Response(status=status, text=f"{status} {message or 'bad request'}\n"[:200],
                                headers={**SAFE_HEADERS, "Server": SERVER})
        response.force_close()
        return response


def _limits_middleware(limits: Limits) -> Callable[..., Awaitable[web.StreamResponse]]:
    def refuse(protocol: _LimitedHandler | None, precise: HTTPStatus) -> web.Response:
        response = web.Response(status=limits.status(precise), headers=SAFE_HEADERS)
        response.force_close()
        if protocol is not None:
            protocol.request_read(None)
            protocol.answered()  # the deadline now bounds the refusal's delivery
        return response

    @web.middleware
    async def enforce(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        protocol = request.protocol if isinstance(request.protocol, _LimitedHandler) else None
        if "Transfer-Encoding" in request.headers and not limits.chunked:
            return refuse(protocol, HTTPStatus.LENGTH_REQUIRED)
        if (request.content_length or 0) > limits.max_body_bytes:
            return refuse(protocol, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        if request.body_exists:
            if protocol is not None:
                if protocol.cut_short(request):
                    return refuse(protocol, HTTPStatus.BAD_REQUEST)  # cut short: it will never be whole
                protocol.request_read(request)
            try:
                await request.read()  # cached: the handler's read()/json()/text() get the same bytes
            except web.HTTPRequestEntityTooLarge:
                return refuse(protocol, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            except (ConnectionError, web.HTTPException, OSError):
                return refuse(protocol, HTTPStatus.BAD_REQUEST)
            except Exception as exc:  # aiohttp's payload errors (a broken chunk) have no common base
                log.debug("refused a request body: %s", exc)
                return refuse(protocol, HTTPStatus.BAD_REQUEST)
        if protocol is not None:
            protocol.request_read(None)
        try:
            response = await handler(request)
        except web.HTTPException as raised:  # aiohttp's own 404/405, or a handler's: an answer all the same
            if not limits.keep_alive:
                raised.force_close()
            raise
        finally:
            if protocol is not None:
                protocol.answered()
        if not limits.keep_alive:
            response.force_close()
        return response

    return enforce


class Site:
    """A started listener: `address` is where it listens (the real port when 0 was asked), `close()` ends it."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server, path: str | None,
                 counted: _Connections) -> None:
        self._runner = runner
        self._server = server
        self.path = path
        self._counted = counted
        self.listen: ListenAddress | None = None  # for TCP: the address bound (the real port when 0 was asked)
        if path is None:
            host, port = server.sockets[0].getsockname()[:2]
            self.listen = ListenAddress(str(host), int(port))

    @property
    def port(self) -> int:
        return self.listen.port if self.listen is not None else 0

    @property
    def address(self) -> str:
        """"127.0.0.1:8443", "[::1]:80" or the socket's path."""
        return self.path if self.path is not None else str(self.listen)

    async def close(self) -> None:
        """Stop listening and end idle connections at once. Answers still being worked on are finished in
        the background (then cut after `request_deadline`): one of them may be the very request that closes
        this site (`pbxsync reload` moving the control socket), and waiting for it here would wait forever."""
        self._server.close()
        if self.path is not None:  # only our own file: a failed start never gets here
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._counted.busy:
            assert self._runner.server is not None
            self._runner.server.pre_shutdown()  # idle connections end now, busy ones after their answer
            finishing = asyncio.ensure_future(self._finish())
            _finishing.add(finishing)
            finishing.add_done_callback(_finishing.discard)
            return
        await self._finish()

    async def _finish(self) -> None:
        await self._runner.cleanup()  # ends open connections (after in-flight answers), then the app
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.wait_closed()


_finishing: set[asyncio.Future[None]] = set()  # closes finishing in the background (a reference keeps them)


def claim_socket_path(path: str) -> None:
    """Remove a socket file nobody answers on; refuse one a live process answers on.

    Outside systemd (no RuntimeDirectory=) the socket's directory is made here, owner and group only."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)  # a local socket answers or refuses at once
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # stale: left by a daemon that was killed
    else:
        raise OSError(errno.EADDRINUSE, f"address already in use: a daemon answers on {path}")
    finally:
        probe.close()


async def start_site(app: web.Application, where: ListenAddress | str, *, limits: Limits | None = None,
                     tls: ssl.SSLContext | None = None, socket_mode: int = 0o660) -> Site:
    """Serve `app` on a TCP address or a Unix socket path (file mode `socket_mode`, never wider meanwhile).

    A socket file left by a daemon that died is replaced; one a live daemon answers on is not: that start
    fails with "address already in use" like a taken TCP port. `app` must not have been started before.
    """
    limits = limits or Limits()
    app.middlewares.insert(0, _limits_middleware(limits))
    app.on_response_prepare.append(_name_the_server)
    handler_args: dict[str, Any] = {"max_line_size": limits.max_header_bytes,
                                    "max_field_size": limits.max_header_bytes,
                                    "keepalive_timeout": 2 * limits.request_deadline, "tcp_keepalive": False,
                                    "lingering_time": 0}  # a refused body is not read on: the connection ends
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=limits.request_deadline,
                           **handler_args)
    await runner.setup()
    manager = runner.server
    assert manager is not None
    loop = asyncio.get_running_loop()
    counted = _Connections(limits)

    def protocol() -> _LimitedHandler:
        return _LimitedHandler(manager, limits, counted, loop=loop, access_log=None, **handler_args)

    try:
        if isinstance(where, ListenAddress):
            server = await loop.create_server(protocol, where.host, where.port, ssl=tls,
                                              ssl_handshake_timeout=limits.request_deadline if tls else None)
            return Site(runner, server, None, counted)
        claim_socket_path(where)
        old_umask = os.umask(0o777 & ~socket_mode)  # never a moment in which others may connect
        try:
            server = await loop.create_unix_server(protocol, where, ssl=tls)
        finally:
            os.umask(old_umask)
        os.chmod(where, socket_mode)
        return Site(runner, server, where, counted)
    except BaseException:
        await runner.cleanup()
        raise
