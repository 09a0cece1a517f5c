"""Answering one phonebook request: who asks (HTTP Basic, a phone token, or anonymous), which book,
which page, and whether the phone already has it.

- `/<vendor>.xml`: HTTP Basic with the user's LDAP credentials (`[[users]] ldap_password`, as the phone
  binds over LDAP: `201`, `uid=201,<base_dn>` or an e-mail address; or the `[ldap] bind_dn` service
  account, which sees the shared contacts), or nothing when `[phonebook] anonymous = true` (the shared
  contacts). Wrong credentials: 401, and guessing is slowed down as for LDAP binds (plugin.ldap.throttle).
- `/<vendor>/<token>.xml`: a phone token (plugin.phonebook.tokens); an unknown token is 404, so a token
  cannot be told apart from a path that does not exist.
- `/grandstream/gs_phonebook.xml`, `/grandstream/<token>/gs_phonebook.xml`: the same, under the file name
  Grandstream phones append to their configured path.
- Each user sees exactly what LDAP shows them (plugin.ldap.access `View`).

The ETag is a digest of the book's version, the format, the search and page, the links in it and the
number settings; `If-None-Match` with it answers 304 before anything is rendered. Documents are
`Cache-Control: private, no-cache`: a phone keeps its copy and asks again with the ETag.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from urllib.parse import quote

from aiohttp import hdrs, web

from pbxsync.plugin.ldap.access import View
from pbxsync.plugin.ldap.protocol import ResultCode
from pbxsync.plugin.phonebook.book import Entries
from pbxsync.plugin.phonebook.pages import FORMATS, Format, ask_of, link, page_of, searched
from pbxsync.plugin.phonebook.server import PhonebookServer
from pbxsync.plugin.phonebook.tokens import TOKEN, token_digest

SERVER: web.AppKey[PhonebookServer] = web.AppKey("phonebook", PhonebookServer)
REALM = 'Basic realm="pbxsync phonebook", charset="UTF-8"'
CACHE_CONTROL = "private, no-cache"
# A Host header as phones send it: a name or address and a port. Anything else is not echoed into links.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
MAX_CREDENTIALS = 1024  # bytes of an Authorization header worth decoding
# Grandstream phones append a fixed file name to the configured path (P331 = `pbx:8089/grandstream/TOKEN`
# asks for `.../grandstream/TOKEN/gs_phonebook.xml`): the same book under that name.
GRANDSTREAM_PATHS = ("/{vendor:grandstream}/gs_phonebook.xml", "/{vendor:grandstream}/{token}/gs_phonebook.xml")


def make_app(server: PhonebookServer) -> web.Application:
    app = web.Application()  # Snom POSTs a small form (plugin.phonebook.server LIMITS); it is not read
    app[SERVER] = server
    for path in (*GRANDSTREAM_PATHS, "/{vendor}.xml", "/{vendor}/{token}.xml"):  # the fixed name matched first
        app.router.add_get(path, handle)
        app.router.add_post(path, handle)
    return app


def _plain(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


async def _who(server: PhonebookServer, request: web.Request) -> View | web.Response:
    token = request.match_info.get("token")
    if token is not None:
        extension = server.tokens.get(token_digest(token)) if TOKEN.fullmatch(token) else None
        view = server.access.user_view(extension) if extension is not None else None
        return view if view is not None else _plain(404, "not found")
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if not header:
        if server.settings.anonymous:
            return View(server.access.shared, "anonymous", False)
        return _plain(401, "credentials needed", {hdrs.WWW_AUTHENTICATE: REALM})
    return await _basic(server, request, header)


async def _basic(server: PhonebookServer, request: web.Request, header: str) -> View | web.Response:
    refused = _plain(401, "invalid credentials", {hdrs.WWW_AUTHENTICATE: REALM})
    credentials = basic_credentials(header)
    if credentials is None:
        return refused
    login, password = credentials
    source = request.remote or "?"
    wait = server.binds.admit(source, login, server.clock())
    if wait is None:
        server.binds.log_refusal(source, login, "too many wrong passwords", server.clock())
        return _plain(429, "too many wrong passwords; try later", {hdrs.RETRY_AFTER: "30"})
    if wait > 0:
        await asyncio.sleep(wait)  # a guesser waits; the loop does not
    outcome = server.access.bind(3, login, password)
    ok = outcome.code is ResultCode.SUCCESS and outcome.view is not None and outcome.view.authenticated
    server.binds.record(source, login, ok, server.clock())
    if not ok or outcome.view is None:
        return refused
    return outcome.view


def basic_credentials(header: str) -> tuple[str, bytes] | None:
    """(login, password) of an `Authorization: Basic` header (RFC 7617, UTF-8); None if it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or len(encoded) > MAX_CREDENTIALS:
        return None
    try:
        login, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (login.decode("utf-8"), password) if colon else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _base(request: web.Request) -> str:
    """This document's own URL without the query, for Cisco's and Snom's soft keys and search forms."""
    host = request.headers.get(hdrs.HOST, "")
    if not _HOST.fullmatch(host):
        sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
        host = f"{sock[0]}:{sock[1]}" if isinstance(sock, tuple) else "localhost"
    return f"{'https' if request.secure else 'http'}://{host}{quote(request.path)}"


def _not_modified(request: web.Request, etag: str) -> bool:
    wanted = request.headers.get(hdrs.IF_NONE_MATCH, "")
    if not wanted:
        return False
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in wanted[:4096].split(","))


async def handle(request: web.Request) -> web.StreamResponse:
    server = request.app[SERVER]
    server.requests += 1
    fmt: Format | None = FORMATS.get(request.match_info["vendor"])
    if fmt is None:
        return _plain(404, "not found")
    who = await _who(server, request)
    if isinstance(who, web.Response):
        return who
    params = request.query
    if fmt.search_form is not None and "search" in params:
        fmt = fmt.search_form
    ask = ask_of(fmt, params)
    book = server.snapshot.book(who)
    base = _base(request) if fmt.links else ""
    etag = '"' + hashlib.blake2b(f"{book.version}\0{fmt.name}\0{ask.key}\0{base}\0{server.settings_key}".encode(),
                                 digest_size=16).hexdigest() + '"'
    headers = {hdrs.ETAG: etag, hdrs.CACHE_CONTROL: CACHE_CONTROL}
    if _not_modified(request, etag):
        server.not_modified += 1
        return web.Response(status=304, headers=headers)
    body = server.cache.get(etag)
    if body is None:
        page = page_of(fmt, searched(book.entries, ask.query), ask, lambda p: link(base, p))
        if fmt.listing is not None and isinstance(page.entries, Entries):  # a join of kept fragments
            body = server.fragments.render(fmt.listing, page, page.entries.packed)
        else:
            body = fmt.render(page)
        server.cache.put(etag, body)
    return web.Response(body=body, content_type="text/xml", charset="utf-8", headers=headers)
