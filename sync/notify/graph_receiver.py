"""The Graph webhook receiver: an aiohttp application on `notification_listen` (pbxsync.sync.http_site).

Graph reaches it through the admin's reverse proxy (TLS ends there) and POSTs two things to the path of
`notification_url`:
- the validation handshake, `POST <path>?validationToken=<token>` while a subscription is being created:
  answered 200 text/plain with the token, but only while pbxsync itself is creating or renewing one
  (`validating()`); at any other time it is refused, so the endpoint is no echo service for strangers;
- notifications, `{"value": [...]}` as JSON: handed to the feed (which checks each one and only queues
  work) and answered 202 at once, whatever they say: a sender learns nothing about what counted.

Everything else is refused: only POST (405), only that path (404), JSON only (415); and by the site: a body
of at most 1 MiB (413), header lines of at most 16 KiB (431), no chunked bodies (411), 10 s to send the
request (408), one request per connection, at most 64 connections at once (503).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from http import HTTPStatus

from aiohttp import web

from pbxsync.sync.http_site import SAFE_HEADERS, Limits, Site, start_site
from pbxsync.sync.listen import ListenAddress

log = logging.getLogger("pbxsync.exchange.graph.webhook")

MAX_BODY_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 1024
LIMITS = Limits(max_connections=64, per_source=64, max_header_bytes=16 * 1024, max_body_bytes=MAX_BODY_BYTES)


class NotificationReceiver:
    """Serves `path` on `listen`; `on_payload` gets each accepted notification POST's parsed JSON."""

    def __init__(self, listen: ListenAddress, path: str, on_payload: Callable[[object], None]) -> None:
        self.listen = listen
        self.path = path or "/"
        self.on_payload = on_payload
        self.received = 0  # notification POSTs accepted
        self.refused = 0  # by this receiver (the site's own refusals, over a cap, are not counted here)
        self._validating = 0
        self._site: Site | None = None

    @property
    def port(self) -> int:
        if self._site is None:
            raise RuntimeError("the receiver is not started")
        return self._site.port

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._site = await start_site(app, self.listen, limits=LIMITS)

    async def close(self) -> None:
        if self._site is not None:
            await self._site.close()
            self._site = None

    @contextlib.contextmanager
    def validating(self) -> Iterator[None]:
        """While inside, validation handshakes are answered (around a subscription's creation)."""
        self._validating += 1
        try:
            yield
        finally:
            self._validating -= 1

    def _refuse(self, status: HTTPStatus) -> web.Response:
        self.refused += 1
        return web.Response(status=status.value, content_type="text/plain", charset="utf-8", headers=SAFE_HEADERS)

    async def _serve(self, request: web.Request) -> web.Response:
        if request.path != self.path:
            return self._refuse(HTTPStatus.NOT_FOUND)
        if request.method != "POST":
            return self._refuse(HTTPStatus.METHOD_NOT_ALLOWED)
        body = await request.read()  # already read (and capped) by the site
        tokens = request.query.getall("validationToken", None)
        if tokens is not None:
            return self._validation(tokens)
        if not request.headers.get("Content-Type", "").lower().startswith("application/json"):
            return self._refuse(HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._refuse(HTTPStatus.BAD_REQUEST)
        self.received += 1  # handed on before the answer: when the sender has its 202, it counted
        try:
            self.on_payload(payload)
        except Exception:
            log.exception("graph webhook: handling a notification failed")
        return web.Response(status=HTTPStatus.ACCEPTED.value, content_type="text/plain", charset="utf-8",
                            headers=SAFE_HEADERS)

    def _validation(self, tokens: list[str]) -> web.Response:
        if not self._validating:
            log.info("graph webhook: a validation request while no subscription is being created; refused")
            return self._refuse(HTTPStatus.FORBIDDEN)
        if len(tokens) != 1 or not tokens[0] or len(tokens[0]) > MAX_TOKEN_CHARS:
            return self._refuse(HTTPStatus.BAD_REQUEST)
        return web.Response(text=tokens[0], content_type="text/plain", charset="utf-8", headers=SAFE_HEADERS)
