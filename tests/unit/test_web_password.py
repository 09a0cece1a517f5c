"""Setting a portal password from a one-time link, and changing it signed in (aiohttp test client)."""

from __future__ import annotations

import pytest

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.sessions import COOKIE
from pbxsync.sync.store.db import Store
from tests.support.web_portal import make_context, password_of, portal_client, sign_in, token_of

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def test_a_link_leads_to_set_your_password_once(store: Store) -> None:
    ctx = await make_context(store)
    token = await accounts.create_link(store, "103", ctx.clock.now())
    async with portal_client(ctx) as client:
        page = await client.get(f"/link/{token}")
        assert page.status == 200 and "Set your password" in await page.text()
        again = await client.get(f"/link/{token}")  # looking does not spend it
        form = token_of(await again.text())
        done = await client.post(f"/link/{token}", data={"csrf": form, "password": "eve's new password",
                                                          "again": "eve's new password"}, allow_redirects=False)
        assert done.status == 303 and done.headers["Location"] == "/my/sync" and COOKIE in done.cookies
        assert await accounts.check_password(store, "103", "eve's new password")
        client.session.cookie_jar.clear()
        spent = await client.get(f"/link/{token}")
        assert spent.status == 410 and "has been used or has expired" in await spent.text()


async def test_a_link_refuses_passwords_that_differ_without_spending_itself(store: Store) -> None:
    ctx = await make_context(store)
    token = await accounts.create_link(store, "103", ctx.clock.now())
    async with portal_client(ctx) as client:
        form = token_of(await (await client.get(f"/link/{token}")).text())
        response = await client.post(f"/link/{token}", data={"csrf": form, "password": "one long password",
                                                              "again": "another long one"})
        assert response.status == 400 and "The two passwords differ." in await response.text()
        assert await accounts.link_extension(store, token, ctx.clock.now()) == "103"


async def test_changing_the_password_ends_the_other_sessions(store: Store) -> None:
    ctx = await make_context(store)
    async with portal_client(ctx) as first, portal_client(ctx) as second:
        await sign_in(first, "102")
        await sign_in(second, "102")
        page = await first.get("/my/password")
        form = token_of(await page.text())
        wrong = await first.post("/my/password", data={"csrf": form, "current": "nope", "password": "x" * 12,
                                                       "again": "x" * 12})
        assert wrong.status == 400 and "The current password is wrong." in await wrong.text()
        done = await first.post("/my/password", data={"csrf": form, "current": password_of("102"),
                                                      "password": "bob's new password", "again": "bob's new password"},
                                allow_redirects=False)
        assert done.status == 303
        assert (await first.get("/my/password", allow_redirects=False)).status == 200  # a fresh session here
        assert (await second.get("/my/password", allow_redirects=False)).status == 303  # signed out there


async def test_guessing_the_current_password_is_throttled_like_sign_in(store: Store) -> None:
    clock = FakeClock()
    async with portal_client(await make_context(store, clock=clock)) as client:
        await sign_in(client, "102")
        form = token_of(await (await client.get("/my/password")).text())
        fields = {"csrf": form, "password": "x" * 12, "again": "x" * 12}
        statuses = [(await client.post("/my/password", data={**fields, "current": f"guess {n}"})).status
                    for n in range(7)]
        assert statuses[:5] == [400] * 5 and 429 in statuses[5:]
        right = await client.post("/my/password", data={**fields, "current": password_of("102")},
                                  allow_redirects=False)
        assert right.status == 429  # even the right one waits
        clock.advance(120)
        right = await client.post("/my/password", data={**fields, "current": password_of("102")},
                                  allow_redirects=False)
        assert right.status == 303
