"""A minimal HTTP/1.1 server on asyncio for the loopback control and metrics endpoints.

One request per connection (`Connection: close`), bounded header and body sizes, a deadline to send the
whole request, and caps on open connections (in all and per source address), so a stuck or hostile client
cannot hold the daemon nor use up its file descriptors (which FastAGI and LDAP share). Over TCP or a Unix
socket. Only what the control endpoint needs; not a general web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger("pbxsync.daemon.http")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Limits:
    """Connection caps: over them a connection gets 503 at once and is closed, holding no descriptor."""

    max_connections: int = 128
    per_source: int = 64  # every local client shares 127.0.0.1, so this only stops a remote flood
    request_deadline: float = READ_TIMEOUT_SECONDS  # to send the whole request; idle connections end here


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, doc: Any, status: int = 200) -> Response:
        return cls(status, (json.dumps(doc, ensure_ascii=False, default=str) + "\n").encode())

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"error": message}, status)


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _BadRequest("headers too large") from None
    except asyncio.IncompleteReadError:
        raise _BadRequest("truncated request") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest("malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest("malformed header")
        headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _BadRequest("bad content-length") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise _BadRequest("body too large")
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise _BadRequest("truncated body") from None
    path, _, query = target.partition("?")
    return Request(method.upper(), path, query, headers, body)


def _encode(response: Response) -> bytes:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else "?"
    head = [f"HTTP/1.1 {response.status} {reason}", f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


class _Connections:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.by_source: dict[str, int] = {}

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


def _source(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "local"  # a Unix socket has no address


def _serve(handler: Handler, limits: Limits) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                         Awaitable[None]]:
    connections = _Connections(limits)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = _source(writer)
        if not connections.admit(source):
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(_encode(Response.error(503, "too many connections")))
            writer.close()  # no drain, no wait: the descriptor goes as soon as the 503 is handed to the kernel
            return
        try:
            await _answer(reader, writer, handler, limits)
        finally:
            connections.release(source)

    return serve


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                  limits: Limits) -> None:
    try:
        try:
            request = await asyncio.wait_for(_read_request(reader), limits.request_deadline)
        except (_BadRequest, TimeoutError) as exc:
            response = Response.error(400, str(exc) or "request timed out")
        else:
            try:
                response = await handler(request)
            except Exception as exc:  # one bad request never takes the endpoint down
                log.exception("control request %s %s failed", request.method, request.path)
                response = Response.error(500, f"internal error: {type(exc).__name__}")
        writer.write(_encode(response))
        await asyncio.wait_for(writer.drain(), limits.request_deadline)
    except (ConnectionError, OSError, TimeoutError):
        pass  # the client went away or does not read; nothing to tell it
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), limits.request_deadline)
        except TimeoutError:
            writer.transport.abort()  # a client that never reads does not keep the descriptor
        except (ConnectionError, OSError):
            pass


async def start_http_server(host: str, port: int, handler: Handler, limits: Limits | None = None) -> asyncio.Server:
    return await asyncio.start_server(_serve(handler, limits or Limits()), host, port, limit=MAX_HEADER_BYTES)


def _claim_socket_path(path: str) -> None:
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


async def start_unix_http_server(path: str, handler: Handler, limits: Limits | None = None,
                                 mode: int = 0o660) -> asyncio.Server:
    """Serve on a Unix socket that only its owner and group may use (`mode`).

    A socket file left by a daemon that died is replaced; one a live daemon answers on is not: that
    start fails with "address already in use" like a taken TCP port.
    """
    _claim_socket_path(path)
    old_umask = os.umask(0o777 & ~mode)  # never a moment in which others may connect
    try:
        server = await asyncio.start_unix_server(_serve(handler, limits or Limits()), path, limit=MAX_HEADER_BYTES)
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    return server

