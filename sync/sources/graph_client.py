"""The Graph HTTP client: requests in worker threads, per-mailbox limits, Retry-After, error mapping.

Why requests: it is already installed (exchangelib and msal depend on it), msal uses it too, and the
calls are few and page-sized; httpx is not installed. Blocking calls run through `asyncio.to_thread`
behind a per-mailbox semaphore (`max_connections`), the same shape as the EWS source.

Throttling is per mailbox, as Graph applies it: a 429/503 with Retry-After holds back that mailbox's
requests only, for at most `max_retry_wait_seconds` per wait and `max_retries` tries; beyond that the
request fails with `SourceBusyError` and the next pass tries again. Links from Graph responses are
followed only when they point at the configured Graph endpoint, so a hostile response cannot send our
bearer token elsewhere.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from pbxsync.sync.errors import SourceAccessError, SourceAuthError, SourceBusyError, SourceDataError, SourceError
from pbxsync.sync.sources.graph_auth import PinnedSession, TokenProvider

log = logging.getLogger("pbxsync.exchange.graph")

MAX_RESPONSE_BYTES = 50 * 1024 * 1024  # one Graph page is a few hundred kB; more is not a page


class DeltaGoneError(SourceError):
    """410 Gone on a delta link (syncStateNotFound, resyncRequired): start a full round. Never escapes."""


class GraphNotFoundError(SourceAccessError):
    """404: the mailbox, or the subscription a PATCH/DELETE named, does not exist (any more)."""


class GraphRequestError(SourceError):
    """Graph refused a request with a status pbxsync has no specific meaning for (e.g. 400); the
    status and error code say why (a subscription's failed validation handshake is 400 ValidationError)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class ClientLimits:
    max_connections: int = 4  # per mailbox
    pool_size: int = 32  # HTTP connections kept open in total
    max_retries: int = 4  # tries per request on 429/503/5xx/connection errors, the first included
    max_retry_wait_seconds: float = 60.0
    timeout_seconds: float = 60.0


Sleep = Callable[[float], Awaitable[None]]


def user_path(mailbox: str) -> str:
    return "/users/" + quote(mailbox, safe="@.+-_")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date; None when missing or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _graph_error(body: bytes) -> tuple[str, str]:
    """(code, message) of a Graph error body {"error": {"code", "message"}}; safe, short, one line."""
    try:
        data = json.loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return "", ""
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return "", ""
    code, message = err.get("code"), err.get("message")
    one_line = " ".join(str(message).split())[:160] if isinstance(message, str) else ""
    return (code[:60] if isinstance(code, str) else ""), one_line


class GraphClient:
    """GETs JSON from Graph for one app; shared by every mailbox of the organisation."""

    def __init__(self, endpoint: str, tokens: TokenProvider, *, verify: bool | str = True,
                 limits: ClientLimits | None = None, sleep: Sleep = asyncio.sleep,
                 user_agent: str = "pbxsync") -> None:
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        self._origin = f"{parts.scheme}://{parts.netloc}".lower()
        self._tokens = tokens
        self._limits = limits or ClientLimits()
        self._sleep = sleep
        self._session = PinnedSession(verify, self._limits.timeout_seconds)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._limits.pool_size)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._user_agent = user_agent
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._not_before: dict[str, float] = {}  # mailbox -> loop time before which we do not ask
        self.requests_sent = 0

    def url(self, path: str) -> str:
        return self.endpoint + path

    def check_link(self, link: object, what: str) -> str:
        """A nextLink/deltaLink from a response, only if it stays on our Graph endpoint."""
        if not isinstance(link, str) or len(link) > 16384:
            raise SourceDataError(f"Graph sent an unusable {what}")
        parts = urlsplit(link)
        if f"{parts.scheme}://{parts.netloc}".lower() != self._origin:
            raise SourceDataError(f"Graph sent a {what} to another host ({parts.netloc[:60]}); not followed")
        return link

    def _gate(self, mailbox: str) -> asyncio.Semaphore:
        gate = self._gates.get(mailbox)
        if gate is None:
            gate = self._gates[mailbox] = asyncio.Semaphore(self._limits.max_connections)
        return gate

    async def get_json(self, mailbox: str, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one page for `mailbox`. Raises SourceError subclasses only (DeltaGoneError on 410)."""
        return await self.request_json(mailbox, "GET", url, headers=headers)

    async def request_json(self, mailbox: str, method: str, url: str, body: object = None,
                           headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One request on behalf of `mailbox` (the key its limits and throttling apply to; for requests
        of no one mailbox, such as $batch, a name of the caller's choosing). The answer's JSON object, {}
        for 204. Raises SourceError subclasses only."""
        async with self._gate(mailbox):
            return await self._with_retries(mailbox, method, url, body, dict(headers or {}))

    def hold(self, mailbox: str, seconds: float) -> None:
        """Ask nothing for `mailbox` for `seconds` (a Retry-After learnt elsewhere, e.g. inside a $batch)."""
        until = asyncio.get_running_loop().time() + max(0.0, seconds)
        self._not_before[mailbox] = max(self._not_before.get(mailbox, 0.0), until)

    async def _with_retries(self, mailbox: str, method: str, url: str, body: object,
                            headers: dict[str, str]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        refreshed_token = False
        attempt = 0
        while True:
            attempt += 1
            hold = self._not_before.get(mailbox, 0.0) - loop.time()
            if hold > 0:
                await self._sleep(hold)
            token = await asyncio.to_thread(self._tokens.token)
            try:
                response = await asyncio.to_thread(self._send, method, url, token, headers, body)
            except requests.RequestException as exc:
                if attempt < self._limits.max_retries:
                    await self._sleep(min(2.0 ** attempt, self._limits.max_retry_wait_seconds))
                    continue
                raise SourceError(f"Graph: cannot reach {self._origin}: {type(exc).__name__}") from None
            status = response.status_code
            if status == 204 or (status in (201, 202) and not response.content):
                return {}
            if status in (200, 201, 202):
                return self._json(response, mailbox)
            code, message = _graph_error(response.content)
            if status == 401:
                if not refreshed_token:
                    # A token revoked or expired before msal thought: ask Entra once more, then give up.
                    refreshed_token = True
                    await asyncio.to_thread(self._tokens.forget)
                    continue
                raise SourceAuthError(f"Graph refused the app's access token for {mailbox}: "
                                      f"{code or 'HTTP 401'}{': ' + message if message else ''}")
            if status == 403:
                raise SourceAccessError(f"Graph: access to mailbox {mailbox} denied ({code or 'HTTP 403'}); "
                                        "check the app's permissions and application access policy")
            if status == 404:
                raise GraphNotFoundError(f"Graph: mailbox {mailbox} not found or not reachable "
                                         f"({code or 'HTTP 404'})")
            if status == 410:
                raise DeltaGoneError(f"Graph: delta state for {mailbox} is gone ({code or 'HTTP 410'})")
            if status in (429, 503, 504) or 500 <= status < 600:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                delay = wait if wait is not None else min(2.0 ** attempt, self._limits.max_retry_wait_seconds)
                if attempt >= self._limits.max_retries or delay > self._limits.max_retry_wait_seconds:
                    raise SourceBusyError(f"Graph is throttling mailbox {mailbox} "
                                          f"({code or 'HTTP ' + str(status)}); giving up for this pass",
                                          retry_after_seconds=wait)
                log.info("graph: %s for %s, retrying in %.1fs", status, mailbox, delay)
                self._not_before[mailbox] = max(self._not_before.get(mailbox, 0.0), loop.time() + delay)
                continue
            raise GraphRequestError(f"Graph: HTTP {status} for {mailbox} ({code or 'no error code'})"
                                    f"{': ' + message if message and status == 400 else ''}", status, code)

    def _send(self, method: str, url: str, token: str, headers: dict[str, str], body: object) -> requests.Response:
        self.requests_sent += 1
        all_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                       "User-Agent": self._user_agent, **headers}
        return self._session.request(method, url, headers=all_headers, timeout=self._limits.timeout_seconds,
                                     allow_redirects=False, json=body)

    @staticmethod
    def _json(response: requests.Response, mailbox: str) -> dict[str, Any]:
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise SourceDataError(f"Graph: a page for {mailbox} is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise SourceDataError(f"Graph: a page for {mailbox} is not JSON") from None
        if not isinstance(data, dict):
            raise SourceDataError(f"Graph: a page for {mailbox} is not a JSON object")
        return data

    def close(self) -> None:
        self._session.close()
