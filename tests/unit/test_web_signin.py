"""Signing in and out of the portal, and the guards every request passes (aiohttp test client)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.web.auth import USER_KEY, WebUser, require_admin, require_self_or_admin
from pbxsync.plugin.web.security import CSP
from pbxsync.plugin.web.sessions import COOKIE
from pbxsync.sync.store.db import Store
from tests.support.web_portal import (
    make_context,
    password_of,
    portal_client,
    portal_config,
    sign_in,
    signin_form,
    token_of,
)

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def test_the_right_password_signs_in_with_a_strict_httponly_cookie(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        response = await sign_in(client, "102")
        assert response.status == 303
        cookie = response.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
        page = await client.get("/signin", allow_redirects=False)
        assert page.status == 303  # signed in: the sign-in page sends you on


async def test_a_wrong_password_and_an_unknown_extension_get_the_same_answer(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        wrong = await sign_in(client, "102", "guess")
        unknown = await sign_in(client, "999", "guess")
        assert wrong.status == unknown.status == 401
        assert COOKIE not in wrong.cookies and COOKIE not in unknown.cookies
        for response in (wrong, unknown):
            assert "The extension or the password is wrong." in await response.text()


async def test_repeated_failures_are_throttled_per_extension(store: Store) -> None:
    clock = FakeClock()
    async with portal_client(await make_context(store, clock=clock)) as client:
        statuses = [(await sign_in(client, "102", "guess")).status for _ in range(7)]
        assert statuses[:5] == [401] * 5 and 429 in statuses[5:]
        throttled = await sign_in(client, "102")  # even the right password waits
        assert throttled.status == 429
        clock.advance(120)
        assert (await sign_in(client, "102")).status == 303


async def test_a_post_without_the_csrf_token_is_refused(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        await signin_form(client)
        response = await client.post("/signin", data={"extension": "102", "password": password_of("102")})
        assert response.status == 403


async def test_a_post_from_another_origin_is_refused(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        token = await signin_form(client)
        response = await client.post("/signin", data={"extension": "102", "password": password_of("102"),
                                                      "csrf": token}, headers={"Origin": "http://evil.example"})
        assert response.status == 403


async def test_a_foreign_host_header_is_refused_before_any_page(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        response = await client.get("/signin", headers={"Host": "evil.example:8480"})
        assert response.status == 421


async def test_every_response_carries_the_security_headers(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        for path, status in (("/signin", 200), ("/static/style.css", 200), ("/no-such-page", 404),
                             ("/static/../app.py", 404)):
            response = await client.get(path)
            assert response.status == status, path
            assert response.headers["Content-Security-Policy"] == CSP
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "Referrer-Policy" in response.headers
        assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP


async def test_signing_out_revokes_the_session_on_the_server(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        signed_in = await sign_in(client, "102")
        stolen = signed_in.cookies[COOKIE].value
        home = await client.get("/signin", allow_redirects=False)
        assert home.status == 303
        page = await client.get("/", allow_redirects=False)
        assert page.headers["Location"] == "/my/sync"
        form = await client.get("/my/sync")
        assert form.status == 200
        out = await client.post("/signout", data={"csrf": token_of(await form.text())}, allow_redirects=False)
        assert out.status == 303
        client.session.cookie_jar.update_cookies({COOKIE: stolen})
        again = await client.get("/signin", allow_redirects=False)
        assert again.status == 200  # the old cookie names a closed session


async def test_signing_in_again_in_the_same_browser_ends_the_session_it_had(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        first = (await sign_in(client, "102")).cookies[COOKIE].value
        token = token_of(await (await client.get("/my/sync")).text())
        again = await client.post("/signin", data={"extension": "103", "password": password_of("103"),
                                                   "csrf": token}, allow_redirects=False)
        assert again.status == 303 and again.cookies[COOKIE].value != first
        async with store.conn.execute("SELECT extension FROM web_sessions") as cur:
            assert [row[0] for row in await cur.fetchall()] == ["103"]  # 102's session is closed


@pytest.mark.parametrize(("target", "location"), [
    ("/users/102/sync", "/users/102/sync"), ("//evil.example/", "/my/sync"), ("/\t/evil.example", "/my/sync"),
    ("/\\evil.example", "/my/sync"), ("https://evil.example/", "/my/sync"), ("/x\r\nSet-Cookie: a=b", "/my/sync"),
])
async def test_after_sign_in_only_local_paths_are_followed(store: Store, target: str, location: str) -> None:
    config = portal_config()
    async with portal_client(await make_context(store, config)) as client:
        token = await signin_form(client)
        response = await client.post("/signin", data={"extension": "102", "password": password_of("102"),
                                                      "csrf": token, "next": target},
                                     allow_redirects=False)
        assert response.headers["Location"] == location


async def test_failures_are_logged_once_per_address_and_minute_without_the_password(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    async with portal_client(await make_context(store, clock=clock)) as client:
        with caplog.at_level(logging.WARNING, logger="pbxsync.web"):
            for _ in range(3):
                await sign_in(client, "102", "guess-one")
            clock.advance(61)
            await sign_in(client, "102", "guess-two")
    lines = [r.getMessage() for r in caplog.records if r.name == "pbxsync.web"]
    assert lines == ["web sign-in: 1 failed or throttled attempt(s) from 127.0.0.1 in the last minute "
                     "(latest for extension '102')",
                     "web sign-in: 3 failed or throttled attempt(s) from 127.0.0.1 in the last minute "
                     "(latest for extension '102')"]
    assert "guess" not in caplog.text


async def test_a_password_typed_as_the_extension_is_not_logged(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    async with portal_client(await make_context(store)) as client:
        with caplog.at_level(logging.WARNING, logger="pbxsync.web"):
            await sign_in(client, "Summer2026secret", "102")
    assert "an extension that is no user" in caplog.text and "Summer2026secret" not in caplog.text


async def test_a_session_ends_after_session_minutes(store: Store) -> None:
    clock = FakeClock()
    async with portal_client(await make_context(store, portal_config(session_minutes=30), clock=clock)) as client:
        await sign_in(client, "102")
        assert (await client.get("/my/password", allow_redirects=False)).status == 200
        clock.advance(30 * 60)
        response = await client.get("/my/password", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/signin")


async def test_a_user_removed_from_the_config_is_signed_out(store: Store) -> None:
    config = portal_config()
    ctx = await make_context(store, config)
    async with portal_client(ctx) as client:
        await sign_in(client, "103")
        without_eve = replace(config, users=[u for u in config.users if u.extension != "103"])
        ctx.current_config = lambda: without_eve
        assert (await client.get("/my/password", allow_redirects=False)).status == 303


def test_admin_pages_are_for_admins_only() -> None:
    def request_as(user: WebUser | None) -> web.Request:
        request = make_mocked_request("GET", "/admin")
        if user is not None:
            request[USER_KEY] = user
        return request

    ada, bob = WebUser("101", "Ada", True, "s1"), WebUser("102", "Bob", False, "s2")
    assert require_admin(request_as(ada)) is ada
    with pytest.raises(web.HTTPForbidden):
        require_admin(request_as(bob))
    with pytest.raises(web.HTTPSeeOther):
        require_admin(request_as(None))
    assert require_self_or_admin(request_as(bob), "102") is bob
    assert require_self_or_admin(request_as(ada), "102") is ada
    with pytest.raises(web.HTTPForbidden):
        require_self_or_admin(request_as(bob), "103")
