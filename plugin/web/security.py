"""What every request passes before a handler: the Host check, the headers on every response, and the
Origin and CSRF checks on every POST.

- Host: only the names in `[web] allowed_hosts`. A DNS-rebinding page (evil.example resolving to the PBX)
  sends its own name in Host and is refused before any handler runs.
- Headers: a strict Content-Security-Policy (no inline script or style, nothing from elsewhere, no
  framing, forms only to this site), nosniff, no Referer to other sites; HSTS under TLS; pages are
  `no-store` (they show personal data), static files may be cached.
- POST (and every other unsafe method): an Origin header, when sent, must name this site; the form field
  `csrf` (or the X-CSRF-Token header, for scripts) must hold the token of the session, or before sign-in
  of the pre-session cookie. SameSite=Strict cookies are the first line; this is the second.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from pbxsync.plugin.web.auth import SESSION_KEY
from pbxsync.plugin.web.context import web_context
from pbxsync.plugin.web.render import render
from pbxsync.plugin.web.sessions import CSRF_FIELD, CSRF_HEADER, PRE_COOKIE, csrf_ok

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STATIC_PREFIX = "/static/"


def host_name(host_header: str) -> str:
    """The name in a Host header, without the port, lower-case; "" when it is not one."""
    text = host_header.strip().lower()
    if text.startswith("["):  # [::1]:8480
        inner, sep, _ = text[1:].partition("]")
        return inner if sep else ""
    name, _, port = text.partition(":")
    if port and not port.isdigit():
        return ""
    return name.removesuffix(".")


def host_allowed(host_header: str, allowed: list[str]) -> bool:
    name = host_name(host_header)
    if not name:
        return False
    if name in allowed:
        return True
    try:  # "::1" written another way ("0:0:0:0:0:0:0:1") is still ::1
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return any(_same_address(address, a) for a in allowed)


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return address == ipaddress.ip_address(text)
    except ValueError:
        return False


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_matches(origin: str, host_header: str) -> bool:
    """An Origin header names this site when its host and port are the Host the browser sent. A port left
    out is the scheme's default on either side: "https://pbx" is "pbx:443" (a proxy may pass either)."""
    parts = urlsplit(origin)
    default = _DEFAULT_PORTS.get(parts.scheme)
    try:
        origin_port = parts.port or default
    except ValueError:  # a port that is no number
        return False
    name, port_text = host_name(host_header), _host_port(host_header)
    host_port = int(port_text) if port_text.isdigit() else default
    return (default is not None and bool(name) and parts.hostname == name and not parts.username
            and parts.path in ("", "/") and origin_port == host_port)


def _host_port(host_header: str) -> str:
    """The port of a Host header as written ("" without one)."""
    text = host_header.strip()
    after_name = text.rpartition("]")[2] if text.startswith("[") else text
    return after_name.rpartition(":")[2] if ":" in after_name else ""


def _from_trusted_proxy(request: web.Request) -> bool:
    proxies = web_context(request).config.web.trusted_proxies
    if not proxies or not request.remote:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(n, strict=False) for n in proxies)


def client_address(request: web.Request) -> str:
    """Who is asking: the peer, or behind a trusted proxy the address it saw (the last X-Forwarded-For
    entry: the ones before it are whatever the client claimed)."""
    if _from_trusted_proxy(request):
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return request.remote or "?"


def is_https(request: web.Request) -> bool:
    """Served over TLS: by this server, or by a trusted proxy in front of it."""
    if web_context(request).tls:
        return True
    return _from_trusted_proxy(request) and request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https"


@web.middleware
async def host_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not host_allowed(request.headers.get("Host", ""), web_context(request).config.web.allowed_hosts):
        raise web.HTTPMisdirectedRequest(text="This portal does not answer to that host name.\n")
    return await handler(request)


@web.middleware
async def post_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in SAFE_METHODS:
        return await handler(request)
    origin = request.headers.get("Origin")
    if origin is not None and not origin_matches(origin, request.headers.get("Host", "")):
        raise web.HTTPForbidden(text="Refused: the form came from another site.\n")
    token = request.headers.get(CSRF_HEADER, "")
    if not token and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # aiohttp keeps it: the handler's own request.post() reads the same
        value = form.get(CSRF_FIELD, "")
        token = value if isinstance(value, str) else ""
    session = request.get(SESSION_KEY) or request.cookies.get(PRE_COOKIE, "")
    if not csrf_ok(web_context(request).secret_key, session, token):
        raise web.HTTPForbidden(text="Refused: the form's security token is missing or stale. Reload the page "
                                     "and try again.\n")
    return await handler(request)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refusal a handler raised (403, 404, ...) as a page in the layout, its text escaped."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type != "text/plain":
            raise
        message = exc.text or exc.reason
        return render(request, "message.html", title=exc.reason, message=message.strip(), status=exc.status)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and static files included."""
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"  # frame-ancestors for browsers that predate it
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if is_https(request):
        headers["Strict-Transport-Security"] = "max-age=31536000"
    if not request.path.startswith(STATIC_PREFIX):
        headers["Cache-Control"] = "no-store"  # pages show personal data; static files set their own
