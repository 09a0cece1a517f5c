"""A minimal HTTP/1.1 server on asyncio for the loopback control and metrics endpoints.

One request per connection (`Connection: close`), bounded header and body sizes and a read timeout,
so a stuck or hostile client cannot hold the daemon. Only what the control endpoint needs; not a
general web server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger("pbxsync.daemon.http")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
READ_TIMEOUT_SECONDS = 10.0


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


async def start_http_server(host: str, port: int, handler: Handler) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_SECONDS)
            except (_BadRequest, TimeoutError) as exc:
                response = Response.error(400, str(exc) or "request timed out")
            else:
                try:
                    response = await handler(request)
                except Exception as exc:  # one bad request never takes the endpoint down
                    log.exception("control request %s %s failed", request.method, request.path)
                    response = Response.error(500, f"internal error: {type(exc).__name__}")
            writer.write(_encode(response))
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to tell it
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return await asyncio.start_server(serve, host, port, limit=MAX_HEADER_BYTES)

