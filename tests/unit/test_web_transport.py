"""The portal over TLS (Secure cookies, HSTS) and behind a reverse proxy (which forwarded headers are
believed, and from whom)."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path

import aiohttp
import pytest

from pbxsync.plugin.web.server import WebService
from pbxsync.plugin.web.sessions import COOKIE, PRE_COOKIE
from pbxsync.sync.store.db import Store
from tests.support.ldap_phonebook import self_signed_certificate
from tests.support.web_portal import make_context, password_of, portal_client, portal_config, sign_in, token_of

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def test_under_tls_cookies_are_secure_and_hsts_is_sent(store: Store, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    ctx = await make_context(store, portal_config(tls_cert=str(cert), tls_key=str(key)))
    service = WebService(ctx)
    await service.start()
    try:
        assert service.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, connector=aiohttp.TCPConnector(ssl=trust)) as session:
            page = await session.get(f"{service.url}signin")
            assert page.headers["Strict-Transport-Security"].startswith("max-age=")
            token = re.search(r'name="csrf" value="([0-9a-f]+)"', await page.text()).group(1)  # type: ignore[union-attr]
            done = await session.post(f"{service.url}signin", allow_redirects=False,
                                      data={"csrf": token, "extension": "102", "password": password_of("102")})
            assert done.status == 303
            cookie = done.cookies[COOKIE]
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
    finally:
        await service.stop()


async def test_a_trusted_proxy_names_the_client_and_the_scheme(store: Store,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    ctx = await make_context(store, portal_config(trusted_proxies=["127.0.0.1/32"]))
    forwarded = {"X-Forwarded-For": "198.51.100.9, 203.0.113.5", "X-Forwarded-Proto": "https"}
    async with portal_client(ctx) as client:
        page = await client.get("/signin", headers=forwarded)
        pre = page.cookies[PRE_COOKIE]
        assert pre["secure"]  # the proxy speaks https to the browser: the browser keeps it to https
        with caplog.at_level(logging.INFO, logger="pbxsync.web"):
            done = await client.post("/signin", allow_redirects=False,
                                     headers={**forwarded, "Cookie": f"{PRE_COOKIE}={pre.value}"},
                                     data={"csrf": token_of(await page.text()), "extension": "102",
                                           "password": password_of("102")})
        assert done.status == 303 and done.cookies[COOKIE]["secure"]
        assert "from 203.0.113.5" in caplog.text and "198.51.100.9" not in caplog.text


async def test_forwarded_headers_from_anybody_else_are_ignored(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    ctx = await make_context(store, portal_config(trusted_proxies=["192.0.2.1"]))
    async with portal_client(ctx) as client:
        client.session.headers.update({"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"})
        with caplog.at_level(logging.INFO, logger="pbxsync.web"):
            done = await sign_in(client, "102", "wrong")
        assert done.status == 401
        assert "from 127.0.0.1" in caplog.text and "203.0.113.5" not in caplog.text
        good = await sign_in(client, "102")
        assert not good.cookies[COOKIE]["secure"]
