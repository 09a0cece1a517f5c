"""*My sync*: folder states, skipped items, Sync now with progress, the user's own settings."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.user_settings import effective_config, load_choices
from pbxsync.sync.errors import ServiceUnavailableError
from pbxsync.sync.model import Folder
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import record_success
from tests.support.web_portal import (
    SyncCalls,
    fill_sync_state,
    make_context,
    portal_client,
    portal_config,
    sign_in,
    token_of,
)

pytestmark = pytest.mark.usefixtures("cheap_argon2")


async def test_my_sync_shows_each_folder_with_its_error_in_words_and_skipped_items(store: Store) -> None:
    ctx = await make_context(store)
    await fill_sync_state(store, ctx.clock)  # type: ignore[arg-type]
    async with portal_client(ctx) as client:
        await sign_in(client, "102")
        page = await client.get("/my/sync")
        assert page.status == 200 and str(page.url).endswith("/users/102/sync")
        html = await page.text()
    assert "Last success</dt><dd>2026-11-27 09:00 UTC" in html
    assert "pbxsync may not open this mailbox folder" in html  # the kind, in words
    assert "Skipped items (2)" in html and "a distribution list, not a phonebook entry" in html


async def test_values_from_exchange_are_escaped_everywhere(store: Store) -> None:
    ctx = await make_context(store)
    await fill_sync_state(store, ctx.clock)  # type: ignore[arg-type]
    async with portal_client(ctx) as client:
        await sign_in(client, "102")
        html = await (await client.get("/users/102/sync")).text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") == 3  # error, folder name, reason


async def test_another_users_page_is_refused_but_an_admin_may_open_it(store: Store) -> None:
    ctx = await make_context(store)
    async with portal_client(ctx) as eve, portal_client(ctx) as ada:
        await sign_in(eve, "103")
        await sign_in(ada, "101")
        for path in ("/users/102/sync", "/users/102/sync/progress"):
            refused = await eve.get(path)
            assert refused.status == 403 and "belongs to another user" in await refused.text()
        token = token_of(await (await eve.get("/users/103/sync")).text())
        assert (await eve.post("/users/102/sync", data={"csrf": token})).status == 403
        assert (await ada.get("/users/102/sync")).status == 200
        assert (await ada.get("/users/999/sync")).status == 404


async def test_signed_out_visitors_are_sent_to_sign_in(store: Store) -> None:
    async with portal_client(await make_context(store)) as client:
        response = await client.get("/users/102/sync", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/signin?next=/users/102/sync"


async def test_sync_now_needs_the_csrf_token(store: Store) -> None:
    calls = SyncCalls()
    async with portal_client(await make_context(store, sync_now=calls)) as client:
        await sign_in(client, "102")
        assert (await client.post("/users/102/sync")).status == 403
        assert (await client.post("/users/102/sync", headers={"X-CSRF-Token": "0" * 64})).status == 403
        await asyncio.sleep(0)
        assert calls.calls == []


async def test_sync_now_runs_one_pass_for_this_user_and_reports_progress_per_folder(store: Store) -> None:
    clock = FakeClock()
    calls = SyncCalls(hold=asyncio.Event())
    ctx = await make_context(store, clock=clock, sync_now=calls)
    async with portal_client(ctx) as client:
        await sign_in(client, "102")
        token = token_of(await (await client.get("/users/102/sync")).text())
        started = await client.post("/users/102/sync", headers={"X-CSRF-Token": token, "Accept": "application/json"})
        assert started.status == 202
        doc = await started.json()
        assert doc["running"] and doc["done"] == 0 and doc["total"] == 2
        again = await client.post("/users/102/sync", headers={"X-CSRF-Token": token, "Accept": "application/json"})
        assert again.status == 202
        await asyncio.sleep(0)
        assert calls.calls == ["102"]  # one pass, however often the button is pressed
        async with store.transaction() as conn:  # the engine finished the contacts folder
            await record_success(conn, "bob@example.com", Folder.CONTACTS, clock.now(), "s")
        doc = await (await client.get("/users/102/sync/progress")).json()
        assert doc["done"] == 1 and [f["state"] for f in doc["folders"]] == ["done", "waiting"]
        html = await (await client.get("/users/102/sync")).text()
        assert "A sync is running" in html and 'href="/users/102/sync">Refresh</a>' in html
        assert calls.hold is not None
        calls.hold.set()
        for _ in range(20):
            doc = await (await client.get("/users/102/sync/progress")).json()
            if not doc["running"]:
                break
            await asyncio.sleep(0)
        assert not doc["running"] and doc["failed"] is None


async def test_sync_now_without_javascript_redirects_back_to_the_page(store: Store) -> None:
    calls = SyncCalls()
    async with portal_client(await make_context(store, sync_now=calls)) as client:
        await sign_in(client, "102")
        token = token_of(await (await client.get("/users/102/sync")).text())
        response = await client.post("/users/102/sync", data={"csrf": token}, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/users/102/sync#progress"


async def test_a_pass_that_cannot_run_is_said_in_words(store: Store) -> None:
    async def broken(extension: str) -> None:
        raise ServiceUnavailableError("the sync service is not running (see pbxsync status)")

    async with portal_client(await make_context(store, sync_now=broken)) as client:  # type: ignore[arg-type]
        await sign_in(client, "102")
        token = token_of(await (await client.get("/users/102/sync")).text())
        await client.post("/users/102/sync", data={"csrf": token})
        await asyncio.sleep(0)
        html = await (await client.get("/users/102/sync")).text()
        assert "could not run: the sync service is not running" in html


async def test_settings_the_admin_allows_are_saved_and_applied(store: Store) -> None:
    config = portal_config(user_settings=["sync_contacts", "room"])
    config = replace(config, pbx=replace(config.pbx, rooms=["800", "801", "802"]))
    applied: list[bool] = []

    async def settings_changed() -> None:
        applied.append(True)

    ctx = await make_context(store, config)
    ctx.settings_changed = settings_changed
    async with portal_client(ctx) as client:
        await sign_in(client, "102")
        html = await (await client.get("/users/102/sync")).text()
        assert 'id="sync_contacts"' in html and 'id="room"' in html and 'id="sync_calendar"' not in html
        token = token_of(html)
        saved = await client.post("/users/102/settings", data={"csrf": token, "room": "802", "sync_calendar": "off"},
                                  allow_redirects=False)
        assert saved.status == 303 and applied == [True]
        assert await load_choices(store) == {"102": {"sync_contacts": False, "room": "802"}}
        bob = effective_config(config, await load_choices(store)).user_by_extension("102")
        assert bob is not None and (bob.sync_contacts, bob.sync_calendar, bob.room) == (False, True, "802")
        bad = await client.post("/users/102/settings", data={"csrf": token, "room": "999"})
        assert bad.status == 400
        assert json.dumps(await load_choices(store)) == json.dumps({"102": {"sync_contacts": False, "room": "802"}})


def test_sync_now_failures_show_our_words_and_hide_internals() -> None:
    from pbxsync.plugin.web.sync_jobs import failure_words
    from pbxsync.sync.errors import UserError

    assert failure_words(UserError("user 105 is not in the configuration")) == "user 105 is not in the configuration"
    internal = failure_words(OSError("/var/lib/pbxsync/pbxsync.db: disk I/O error"))
    assert "/var/lib" not in internal and "log" in internal
