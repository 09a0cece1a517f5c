"""The Graph webhook receiver: a small HTTP/1.1 server on asyncio streams, bound to `notification_listen`.

Graph reaches it through the admin's reverse proxy (TLS ends there) and POSTs two things to the path of
`notification_url`:
- the validation handshake, `POST <path>?validationToken=<token>` while a subscription is being created:
  answered 200 text/plain with the token, but only while pbxsync itself is creating or renewing one
  (`validating()`); at any other time it is refused, so the endpoint is no echo service for strangers;
- notifications, `{"value": [...]}` as JSON: handed to the feed (which checks each one and only queues
  work) and answered 202 at once, whatever they say: a sender learns nothing about what counted.

Everything else is refused: only POST (405), only that path (404), JSON only (415), a body of at most
1 MiB (413), headers of at most 16 KiB (431), no chunked bodies (411), 10 s to send the request (408),
one request per connection, at most 64 connections at once. The daemon's control endpoint has a similar
server in plugin/; this one lives in sync/ because sync/ must not import plugin/, and it does much less.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from pbxsync.sync.listen import ListenAddress

log = logging.getLogger("pbxsync.exchange.graph.webhook")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 1024
MAX_CONNECTIONS = 64
READ_TIMEOUT_SECONDS = 10.0


class _Refused(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


class NotificationReceiver:
    """Serves `path` on `listen`; `on_payload` gets each accepted notification POST's parsed JSON."""

    def __init__(self, listen: ListenAddress, path: str, on_payload: Callable[[object], None]) -> None:
        self.listen = listen
        self.path = path or "/"
        self.on_payload = on_payload
        self.received = 0  # notification POSTs accepted
        self.refused = 0
        self._validating = 0
        self._connections = 0
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.listen.host, self.listen.port,
                                                  limit=MAX_HEADER_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @contextlib.contextmanager
    def validating(self) -> Iterator[None]:
        """While inside, validation handshakes are answered (around a subscription's creation)."""
        self._validating += 1
        try:
            yield
        finally:
            self._validating -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        payload: object = None
        try:
            if self._connections > MAX_CONNECTIONS:
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE)
            status, content_type, body, payload = await asyncio.wait_for(self._handle(reader),
                                                                         READ_TIMEOUT_SECONDS)
        except _Refused as refused:
            self.refused += 1
            status, content_type, body = refused.status, "text/plain; charset=utf-8", b""
        except TimeoutError:
            self.refused += 1
            status, content_type, body = HTTPStatus.REQUEST_TIMEOUT, "text/plain; charset=utf-8", b""
        if payload is not None:  # handed on before the answer: when the sender has its 202, it counted
            self.received += 1
            try:
                self.on_payload(payload)
            except Exception:
                log.exception("graph webhook: handling a notification failed")
        try:
            head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n"
                    "X-Content-Type-Options: nosniff\r\n\r\n")
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, str, bytes, object]:
        """(status, content type, body, payload for the feed or None)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE) from None
        except asyncio.IncompleteReadError:
            raise _Refused(HTTPStatus.BAD_REQUEST) from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refused(HTTPStatus.BAD_REQUEST)
        method, target = parts[0], urlsplit(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if target.path != self.path:
            raise _Refused(HTTPStatus.NOT_FOUND)
        if method != "POST":
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED)
        if "transfer-encoding" in headers:
            raise _Refused(HTTPStatus.LENGTH_REQUIRED)
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise _Refused(HTTPStatus.LENGTH_REQUIRED)
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise _Refused(HTTPStatus.BAD_REQUEST) from None
        tokens = parse_qs(target.query).get("validationToken")
        if tokens is not None:
            return self._validation(tokens)
        if not headers.get("content-type", "").lower().startswith("application/json"):
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Refused(HTTPStatus.BAD_REQUEST) from None
        return HTTPStatus.ACCEPTED, "text/plain; charset=utf-8", b"", payload

    def _validation(self, tokens: list[str]) -> tuple[HTTPStatus, str, bytes, object]:
        if not self._validating:
            log.info("graph webhook: a validation request while no subscription is being created; refused")
            raise _Refused(HTTPStatus.FORBIDDEN)
        if len(tokens) != 1 or not tokens[0] or len(tokens[0]) > MAX_TOKEN_CHARS:
            raise _Refused(HTTPStatus.BAD_REQUEST)
        return HTTPStatus.OK, "text/plain; charset=utf-8", tokens[0].encode("utf-8"), None
