"""The admin pages' handlers (aiohttp test client over a seeded store): who may open them, what they show,
sorting and filtering by query, the audit trail, the outcomes chart's numbers, and no secret on the
configuration page."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from html import unescape
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.logs import forget_secrets
from pbxsync.plugin.web.context import WebContext
from pbxsync.sync.config import ControlConfig, ExchangeConfig, LdapConfig, PbxConfig
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store
from tests.support.admin_seed import EXPECTED_TABLE, HOSTILE_SUBJECT, NOW, seed_admin_data
from tests.support.web_portal import make_context, portal_client, portal_config, sign_in

pytestmark = pytest.mark.usefixtures("cheap_argon2")
Client = TestClient[Any, Any]
ADMIN_PAGES = ["/admin", "/admin/users", "/admin/lag", "/admin/health", "/admin/bookings", "/admin/bookings/1",
               "/admin/outcomes", "/admin/config"]


async def admin_context(store: Store, **changes: Any) -> WebContext:
    await seed_admin_data(store)
    ctx = await make_context(store, portal_config(**changes.pop("web", {})), clock=FakeClock(NOW))
    for name, value in changes.items():
        setattr(ctx, name, value)
    return ctx


@asynccontextmanager
async def signed_in(store: Store, extension: str, **changes: Any) -> AsyncIterator[Client]:
    """A test client over the seeded store, signed in as `extension`."""
    async with portal_client(await admin_context(store, **changes)) as client:
        await sign_in(client, extension)
        yield client


async def page(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, (path, response.status)
    return await response.text()


def cells(html: str, row_class: str = "") -> list[list[str]]:
    """The text of each body row's cells (th and td), tags removed."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [[" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split())
             for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)] for r in rows]


@pytest.mark.parametrize("path", ADMIN_PAGES)
async def test_a_signed_in_non_admin_is_refused_every_admin_page_with_a_log_line(
        store: Store, path: str, caplog: pytest.LogCaptureFixture) -> None:
    async with signed_in(store, "102") as client:
        with caplog.at_level(logging.WARNING, logger="pbxsync.web"):
            response = await client.get(path, allow_redirects=False)
        assert response.status == 403
        assert "Stand-up" not in await response.text()
        assert any("extension 102 refused an admin page" in r.getMessage() and path in r.getMessage()
                   for r in caplog.records)


async def test_signed_out_visitors_are_sent_to_sign_in(store: Store) -> None:
    async with portal_client(await admin_context(store)) as client:
        response = await client.get("/admin/outcomes", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/signin?next=/admin/outcomes")


async def test_only_admins_see_the_admin_entry_in_the_navigation(store: Store) -> None:
    async with signed_in(store, "102") as client:
        assert 'href="/admin/users"' not in await page(client, "/my/sync")
        await sign_in(client, "101")
        assert 'href="/admin/users"' in await page(client, "/my/sync")


async def test_users_show_match_last_sync_errors_in_words_and_lag(store: Store) -> None:
    async with signed_in(store, "101") as client:
        html = await page(client, "/admin/users")
        rows = {r[0]: r for r in cells(html)}
        assert set(rows) == {"101", "102", "103"}
        assert rows["101"][4] == "ok" and rows["101"][7] == "5 min"  # the worse folder: contacts, 5 min ago
        assert rows["102"][4] == "error" and rows["102"][7] == "2 h"
        assert "Exchange refused pbxsync's sign-in" in rows["102"][5] and "(401 Unauthorized <html>)" in rows["102"][5]
        assert "401 Unauthorized &lt;html&gt;" in html  # Exchange's text, escaped
        assert rows["103"][4] == "never" and rows["103"][7] == "never synced"


async def test_users_sort_and_filter_by_query_parameters(store: Store) -> None:
    async with signed_in(store, "101") as client:
        by_lag = [r[0] for r in cells(await page(client, "/admin/users?sort=lag&order=desc"))]
        assert by_lag == ["103", "102", "101"]  # never synced is the worst lag
        assert [r[0] for r in cells(await page(client, "/admin/users?sort=lag&order=asc"))] == ["101", "102", "103"]
        assert [r[0] for r in cells(await page(client, "/admin/users?status=error"))] == ["102"]
        assert [r[0] for r in cells(await page(client, "/admin/users?q=EVE"))] == ["103"]
        assert [r[0] for r in cells(await page(client, "/admin/users?sort=nonsense&order=up&status=x"))] == [
            "101", "102", "103"]
        html = await page(client, "/admin/users?sort=name&order=desc")
        assert [r[1] for r in cells(html)] == ["Eve Example", "Bob Builder", "Ada Admin"]
        assert 'aria-sort="descending"' in html


async def test_the_lag_page_lists_the_worst_first_with_a_chart(store: Store) -> None:
    async with signed_in(store, "101") as client:
        html = await page(client, "/admin/lag")
        assert [r[0] for r in cells(html.split("</svg>", 1)[1])] == ["102", "101", "103"]
        assert html.count('class="bar"') == 2 and "<title id=\"lag-chart-title\">" in html


def daemon_status() -> dict[str, Any]:
    return {"version": "9.9", "pid": 4242, "started": "2026-12-03T08:00:00+00:00", "config": "/etc/p.toml",
            "database": "/var/lib/p.db", "ok": False, "store": {"ok": True, "integrity": "ok"},
            "services": [{"name": "sync", "state": "running", "ok": True, "detail": "3 users", "restarts": 0},
                         {"name": "ami", "state": "backoff", "ok": False, "detail": "connection refused",
                          "restarts": 2, "last_error": "refused <b>"}]}


async def test_health_shows_the_same_parts_as_pbxsync_status(store: Store) -> None:
    async with signed_in(store, "101", daemon_status=daemon_status) as client:
        html = await page(client, "/admin/health")
        assert cells(html) == [["sync", "running", "ok", "3 users"],
                               ["ami", "backoff", "FAIL", "connection refused (restarted 2x, last error: refused <b>)"]]
        assert "NOT HEALTHY" in html and "pid 4242" in html


async def test_health_without_a_daemon_says_so(store: Store) -> None:
    async with signed_in(store, "101") as client:
        assert "status is not available" in await page(client, "/admin/health")


async def test_bookings_list_and_a_booking_audit_trail(store: Store) -> None:
    async with signed_in(store, "101") as client:
        listing = await page(client, "/admin/bookings")
        assert "Vendor pitch" in listing and "is not a PBX user" in listing and "Running now" in listing
        assert "Stand-up" not in listing  # past: only with show=all
        every = await page(client, "/admin/bookings?show=all")
        assert "Stand-up" in every and HOSTILE_SUBJECT not in every
        assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;" in every
        html = await page(client, "/admin/bookings/1")
        trail = [(r[1], r[2]) for r in cells(html.split('id="trail-heading"', 1)[1])]
        assert trail == [("booked", "booked in room 801"), ("changed", "room 801 -> 800"),
                         ("called", "101, attempt 1"), ("called", "102, attempt 1"), ("called", "103, attempt 1"),
                         ("answered", "101, attempt 1"), ("busy", "102, attempt 1"), ("no answer", "103, attempt 1"),
                         ("joined the room", "101, attempt 1"), ("called", "102, attempt 2"),
                         ("answered", "102, attempt 2"), ("joined the room", "102, attempt 2")]
        assert (await client.get("/admin/bookings/999")).status == 404
        assert (await client.get("/admin/bookings/x1")).status == 404


async def test_outcomes_chart_and_table_hold_the_same_counts_per_day(store: Store) -> None:
    async with signed_in(store, "101") as client:
        html = await page(client, "/admin/outcomes?days=7")
        table = {r[0]: tuple(int(v) for v in r[1:]) for r in cells(html.split('id="outcomes-table"', 1)[1])}
        assert len(table) == 7 and list(table)[-1] == "2026-12-03"
        for day, expected in EXPECTED_TABLE.items():
            assert table[day] == expected
        bars = re.findall(r'<rect class="bar"[^>]*data-series="([a-z_]+)" data-category="([0-9-]+)" '
                          r'data-value="(\d+)"', html)
        from_chart: dict[str, list[int]] = {}
        order = ["answered", "busy", "no_answer", "failed"]
        for series, day, value in bars:
            from_chart.setdefault(day, [0, 0, 0, 0])[order.index(series)] += int(value)
        assert {day: tuple(v) for day, v in from_chart.items()} == {d: v for d, v in EXPECTED_TABLE.items() if any(v)}
        assert "<title id=\"outcomes-chart-title\">AUTOCALL outcomes per day, last 7 days</title>" in html
        assert "answered 3, busy 1, no answer 1, failed 2." in html  # the description sums it up
        default = await page(client, "/admin/outcomes?days=abc")
        assert len(cells(default.split('id="outcomes-table"', 1)[1])) == 14


SECRETS = {"exchange": "ews-Pa55word!", "client": "graph-client-secret-xyz", "pbx": "ami-secret-4711",
           "control": "control-token-abcdef", "ldap": "ldap-bind-secret", "user": "user-own-pw-1",
           "phone": "phone-ldap-pw-2"}


async def test_the_effective_configuration_shows_no_secret(store: Store) -> None:
    forget_secrets()
    config = portal_config()
    users = [replace(config.users[0], password=Secret(SECRETS["user"], "inline"),
                     ldap_password=Secret(SECRETS["phone"], "env PHONE_PW")), *config.users[1:]]
    config = replace(
        config, users=users,
        exchange=ExchangeConfig(password=Secret(SECRETS["exchange"], "file /etc/pbxsync/ews.pass"),
                                client_secret=Secret(SECRETS["client"], "command"),
                                server=f"https://svc:{SECRETS['exchange']}@mail.example.com/EWS/Exchange.asmx"),
        pbx=PbxConfig(secret=Secret(SECRETS["pbx"])), control=ControlConfig(token=Secret(SECRETS["control"])),
        ldap=LdapConfig(bind_password=Secret(SECRETS["ldap"])))
    await seed_admin_data(store)
    ctx = await make_context(store, config, clock=FakeClock(NOW))
    async with portal_client(ctx) as client:
        await sign_in(client, "101")
        html = await page(client, "/admin/config")
    for value in SECRETS.values():
        assert value not in html and value not in unescape(html)
    assert "*** (from file /etc/pbxsync/ews.pass)" in html and "*** (from env PHONE_PW)" in html
    assert "https://svc:***@mail.example.com" in html  # a secret inside another value is scrubbed too
    assert "sync_contacts" in html and "allowed_hosts" in html and "users: 3 entries" in html
    forget_secrets()


def test_the_config_page_lists_every_key_of_every_section() -> None:
    from pbxsync.plugin.web.admin_config import config_rows

    keys = {k for k, _ in config_rows(portal_config())}
    assert {"database", "exchange.server", "sync.interval_minutes", "users[0].extension", "pbx.secret",
            "web.admins", "web.listen", "log.level"} <= keys
    assert "path" not in keys
    assert dict(config_rows(portal_config()))["web.listen"] == "127.0.0.1:0"


async def test_a_thousand_users_are_paged_and_pages_keep_the_sort(store: Store) -> None:
    from pbxsync.sync.config import UserConfig

    many = [UserConfig(str(2000 + i), [f"u{i}@example.com"], f"User {i}") for i in range(120)]
    config = replace(portal_config(), users=[*portal_config().users, *many])
    await seed_admin_data(store)
    ctx = await make_context(store, config, clock=FakeClock(NOW))
    async with portal_client(ctx) as client:
        await sign_in(client, "101")
        first = await page(client, "/admin/users?sort=name&order=desc")
        assert len(cells(first)) == 50 and "page 1 of 3" in first
        assert 'href="?q=&amp;status=&amp;sort=name&amp;order=desc&amp;page=2"' in first
        last = await page(client, "/admin/users?sort=name&order=desc&page=3")
        assert [r[1] for r in cells(last)][-3:] == ["Eve Example", "Bob Builder", "Ada Admin"]
        assert len(cells(await page(client, "/admin/users?page=999"))) == 23  # clamped to the last page
        config_page = await page(client, "/admin/config?page=2")
        assert "users: 123 entries, page 2 of 2" in config_page and 'href="?page=1#cfg-users"' in config_page


async def test_users_pages_read_the_reports_once_and_show_changes_and_lag_at_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from pbxsync.plugin.web import admin_users
    from pbxsync.plugin.web.context import CONTEXT
    from pbxsync.sync.model import utc_text

    reads = []
    real_reports = admin_users.user_reports

    async def counted_reports(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return await real_reports(*args, **kwargs)

    monkeypatch.setattr(admin_users, "user_reports", counted_reports)
    async with signed_in(store, "101") as client:
        clock = client.server.app[CONTEXT].clock
        assert isinstance(clock, FakeClock)
        assert {r[0]: r[7] for r in cells(await page(client, "/admin/users"))}["101"] == "5 min"
        # Sorting, filtering, paging and the lag page: the same reading.
        for path in ("/admin/users?sort=lag", "/admin/users?q=bob", "/admin/lag", "/admin/users?page=2"):
            await page(client, path)
        assert len(reads) == 1
        # Three minutes later, nothing changed: the lag shown is the request's, the reading is renewed
        # behind the page.
        clock.advance(180)
        assert {r[0]: r[7] for r in cells(await page(client, "/admin/users"))}["101"] == "8 min"
        cache = admin_users.CACHES[store]
        assert cache.reading is not None
        await cache.reading
        assert len(reads) == 2
        # A folder state changes (a pass ran): five admins at once wait for one new reading, and see it.
        async with store.transaction() as conn:
            await conn.execute("UPDATE folder_sync SET last_attempt = ?, last_success = ?, last_error = NULL, "
                               "error_kind = NULL WHERE mailbox = 'bob@example.com'",
                               (utc_text(clock.now()), utc_text(clock.now())))
        pages = await asyncio.gather(*(page(client, "/admin/users") for _ in range(5)))
        assert len(reads) == 3
        assert all({r[0]: r[4] for r in cells(html)}["102"] == "ok" for html in pages)
