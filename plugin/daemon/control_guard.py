"""Who may use the control endpoint: the checks every request passes before the handler sees it.

A web page in the admin's browser can POST `text/plain` to 127.0.0.1 without a CORS preflight, and DNS
rebinding lets it read answers under its own host name. So, over TCP and the Unix socket alike:
- Host must name this endpoint (loopback or the configured host): a rebound name is refused;
- any Origin header is refused: the CLI never sends one, a browser always does on POST;
- POST bodies must be `Content-Type: application/json` (a browser cannot send that cross-site unpreflighted)
  and nested at most `MAX_JSON_DEPTH` deep (a deep body would blow the parser's recursion);
- over TCP, `Authorization: Bearer <token>` must match the configured token (compared in constant time).
Pure: a request's method, headers and body in, an error response or None out.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MAX_JSON_DEPTH = 8  # {"user": "101"} is 1 deep
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Guard:
    hosts: frozenset[str]  # Host header names (lower case, no port) this endpoint answers to
    token: str = ""  # "" = no token needed (the Unix socket: file permissions decide)

    @staticmethod
    def for_tcp(host: str, token: str) -> Guard:
        return Guard(LOOPBACK_NAMES | {host.lower()}, token)

    @staticmethod
    def for_unix() -> Guard:
        return Guard(LOOPBACK_NAMES)


def host_name(header: str) -> str:
    """The name part of a Host header: "[::1]:8459" -> "::1", "localhost:80" -> "localhost"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest, counted without parsing (brackets in strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(doc, ensure_ascii=False, default=str) + "\n", status=status,
                        content_type="application/json")


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def refusal(guard: Guard, method: str, headers: Mapping[str, str], body: bytes) -> web.Response | None:
    """Why this request is refused, as the answer to send; None when it may go on.

    `headers` must look names up case-insensitively (aiohttp's request.headers does)."""
    if "origin" in headers:
        return json_error(403, "requests from web pages are refused (Origin header present)")
    if host_name(headers.get("host", "")) not in guard.hosts:
        return json_error(403, "Host header does not name this endpoint")
    if guard.token:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                                                                   guard.token.encode()):
            response = json_error(401, "a valid Bearer token is required (control.token_file)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
    if method == "POST":
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            return json_error(415, "POST bodies must be Content-Type: application/json")
        if json_depth(body) > MAX_JSON_DEPTH:
            return json_error(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return None
