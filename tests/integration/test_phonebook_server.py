"""The XML phonebook over HTTP: who gets which book (as over LDAP), tokens, anonymous access, ETag/304,
change pickup, TLS. A real server on 127.0.0.1 port 0, aiohttp's client."""

from __future__ import annotations

import base64
import dataclasses
import sqlite3
import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from pbxsync.plugin.phonebook.server import PhonebookServer
from pbxsync.plugin.phonebook.tokens import add_token, revoke_tokens
from pbxsync.sync.config import Config, LdapConfig, PhonebookConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import open_store
from tests.support.ldap_phonebook import make_config, make_store, self_signed_certificate
from tests.support.sample_contacts import SampleContact, write_contacts

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


ALICE = basic("201", "alice-secret")
BOB = basic("202", "bob-secret")


def config(db: Path, ldap: LdapConfig | None = None, **phonebook: object) -> Config:
    base = make_config(db)
    settings = dataclasses.replace(PhonebookConfig(listen=ListenAddress("127.0.0.1", 0), refresh_seconds=0),
                                   **phonebook)  # type: ignore[arg-type]
    # LDAP anonymous stays as the LDAP tests set it: the phonebook's own switch must be what counts.
    return dataclasses.replace(base, phonebook=settings, ldap=ldap or dataclasses.replace(
        base.ldap, shared_mailboxes=["shared@example.com"]))


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    return await make_store(tmp_path / "pbxsync.db")


async def started(cfg: Config, db: Path) -> PhonebookServer:
    server = PhonebookServer(cfg, db)
    await server.start()
    return server


@pytest.fixture
async def server(db: Path) -> AsyncIterator[PhonebookServer]:
    s = await started(config(db), db)
    yield s
    await s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(server: PhonebookServer, path: str) -> str:
    host, port = server.addresses[0]
    return f"http://{host}:{port}{path}"


async def names(http: aiohttp.ClientSession, address: str, **kwargs: object) -> list[str]:
    async with http.get(address, **kwargs) as resp:  # type: ignore[arg-type]
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "text/xml; charset=utf-8"
        root = ET.fromstring(await resp.read())
    return [e.text or "" for e in root.iterfind("DirectoryEntry/Name")]


# ---- who sees what --------------------------------------------------------------------------------------


async def test_a_user_gets_their_own_contacts_and_the_shared_ones_as_over_ldap(
        server: PhonebookServer, http: aiohttp.ClientSession) -> None:
    assert await names(http, url(server, "/yealink.xml"), headers=ALICE) == [
        "Bob Smith", "Jürgen Müller", "Reception", "Zoë Mülheim"]
    assert await names(http, url(server, "/yealink.xml"), headers=BOB) == ["Carol King", "Dieter Miller", "Reception"]
    # the same login forms as an LDAP bind
    for login in ("uid=201,ou=phonebook,dc=example,dc=com", "alice@example.com"):
        assert "Jürgen Müller" in await names(http, url(server, "/yealink.xml"), headers=basic(login, "alice-secret"))


async def test_the_ldap_service_account_gets_the_shared_contacts(db: Path, http: aiohttp.ClientSession) -> None:
    ldap = dataclasses.replace(make_config(db).ldap, shared_mailboxes=["shared@example.com"],
                               bind_dn="cn=phones,ou=phonebook,dc=example,dc=com", bind_password=Secret("phones!"))
    s = await started(config(db, ldap), db)
    try:
        assert await names(http, url(s, "/yealink.xml"),
                           headers=basic("cn=phones,ou=phonebook,dc=example,dc=com", "phones!")) == [
            "Reception"]
    finally:
        await s.stop()


async def test_wrong_or_missing_credentials_are_401_and_anonymous_is_off_by_default(
        server: PhonebookServer, http: aiohttp.ClientSession) -> None:
    for auth in (None, basic("201", "wrong"), basic("201", ""),
                 basic("999", "alice-secret")):
        async with http.get(url(server, "/yealink.xml"), headers=auth or {}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith('Basic realm="pbxsync phonebook"')
            assert "Müller" not in await resp.text()
    for header in ("Basic !!!", "Basic " + "A" * 5000, "Bearer x", "Basic w7w="):
        async with http.get(url(server, "/yealink.xml"), headers={"Authorization": header}) as resp:
            assert resp.status == 401


async def test_anonymous_when_configured_gets_the_shared_contacts_only(
        db: Path, http: aiohttp.ClientSession) -> None:
    s = await started(config(db, anonymous=True), db)
    try:
        assert await names(http, url(s, "/yealink.xml")) == ["Reception"]
        async with http.get(url(s, "/yealink.xml"), headers=basic("201", "wrong")) as resp:
            assert resp.status == 401  # wrong credentials are not quietly anonymous
    finally:
        await s.stop()


async def test_a_phone_token_gets_its_users_book_and_nothing_else(
        db: Path, http: aiohttp.ClientSession) -> None:
    store = await open_store(db)
    try:
        alice, bob = await add_token(store, "201", NOW), await add_token(store, "202", NOW)
    finally:
        await store.close()
    assert alice != bob and len(alice) == 32
    s = await started(config(db), db)
    try:
        assert "Jürgen Müller" in await names(http, url(s, f"/yealink/{alice}.xml"))
        assert "Carol King" in await names(http, url(s, f"/yealink/{bob}.xml"))
        # Grandstream appends its own file name to the configured path, with a token or Basic credentials
        for path, auth in ((f"/grandstream/{alice}/gs_phonebook.xml", {}), ("/grandstream/gs_phonebook.xml", ALICE)):
            async with http.get(url(s, path), headers=auth) as resp:
                assert resp.status == 200
                assert ET.fromstring(await resp.read()).tag == "AddressBook"
                assert "Müller" in await resp.text()
        async with http.get(url(s, f"/yealink/{alice}/gs_phonebook.xml")) as resp:
            assert resp.status == 404
        assert "Jürgen Müller" not in await names(http, url(s, f"/yealink/{bob}.xml"))
        # Basic credentials of another user do not widen a token's book
        assert "Jürgen Müller" not in await names(http, url(s, f"/yealink/{bob}.xml"), headers=ALICE)
        for wrong in (alice[:-1] + ("A" if alice[-1] != "A" else "B"), "x" * 32, "short", alice + "x"):
            async with http.get(url(s, f"/yealink/{wrong}.xml")) as resp:
                assert resp.status == 404
        with sqlite3.connect(db) as conn:  # only the digest is stored
            stored = [r[0] for r in conn.execute("SELECT token_sha256 FROM phonebook_tokens")]
        assert alice not in stored and len(stored) == 2
        store = await open_store(db)
        try:
            assert await revoke_tokens(store, "201") == 1
        finally:
            await store.close()
        await s.reload(force=False)
        async with http.get(url(s, f"/yealink/{alice}.xml")) as resp:
            assert resp.status == 404
    finally:
        await s.stop()


async def test_unknown_vendors_and_methods(server: PhonebookServer, http: aiohttp.ClientSession) -> None:
    async with http.get(url(server, "/polycom.xml"), headers=ALICE) as resp:
        assert resp.status == 404
    async with http.delete(url(server, "/yealink.xml"), headers=ALICE) as resp:
        assert resp.status == 405
    async with http.post(url(server, "/snom-tbook.xml"), headers=ALICE, data=b"x=1") as resp:
        assert resp.status == 200  # Snom's remote directory POSTs


# ---- caching -----------------------------------------------------------------------------------------


async def test_etag_and_304_for_an_unchanged_book(server: PhonebookServer, http: aiohttp.ClientSession) -> None:
    async with http.get(url(server, "/yealink.xml"), headers=ALICE) as resp:
        etag = resp.headers["ETag"]
        assert resp.headers["Cache-Control"] == "private, no-cache"
    async with http.get(url(server, "/yealink.xml"), headers={**ALICE, "If-None-Match": etag}) as resp:
        assert resp.status == 304 and await resp.read() == b""
        assert resp.headers["ETag"] == etag
    async with http.get(url(server, "/yealink.xml"), headers={**ALICE, "If-None-Match": f'"x", W/{etag}'}) as resp:
        assert resp.status == 304
    # a different user, format or search is a different document
    async with http.get(url(server, "/yealink.xml"), headers={**BOB, "If-None-Match": etag}) as resp:
        assert resp.status == 200 and resp.headers["ETag"] != etag
    async with http.get(url(server, "/snom.xml"), headers={**ALICE, "If-None-Match": etag}) as resp:
        assert resp.status == 200
    async with http.get(url(server, "/yealink.xml?q=bob"), headers={**ALICE, "If-None-Match": etag}) as resp:
        assert resp.status == 200
    # credentials are checked before the ETag: a stranger learns nothing from a 304
    async with http.get(url(server, "/yealink.xml"), headers={"If-None-Match": etag}) as resp:
        assert resp.status == 401
    assert server.not_modified == 2


async def test_a_synced_change_changes_only_the_books_that_show_it(
        server: PhonebookServer, db: Path, http: aiohttp.ClientSession) -> None:
    async def etag(auth: dict[str, str]) -> str:
        async with http.get(url(server, "/yealink.xml"), headers=auth or {}) as resp:
            return resp.headers["ETag"]

    before_alice, before_bob = await etag(ALICE), await etag(BOB)
    assert not await server.reload(force=False)  # nothing committed: no re-read
    conn = sqlite3.connect(db)
    try:
        write_contacts(conn, [SampleContact("bob@example.com", "B9", "Eve New", "Eve", "New",
                                            phones=(("mobile", "+49 171 2223344"),))])
    finally:
        conn.close()
    assert await server.reload(force=False)
    assert server.cache.get(before_alice) is not None  # alice's rendered book is still good: not rendered again
    assert await etag(ALICE) == before_alice  # unchanged book, same ETag after the re-read
    assert await etag(BOB) != before_bob
    assert "Eve New" in await names(http, url(server, "/yealink.xml"), headers=BOB)
    # an edit in the same second as the last one, and a calendar pass, are told apart
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE contacts SET display_name = 'Eve Renamed' WHERE item_id = 'B9'")
    assert await server.reload(force=False)
    assert "Eve Renamed" in await names(http, url(server, "/yealink.xml"), headers=BOB)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO address_cache (address, smtp, resolved_at) VALUES ('x', 'y', 'z')")
    assert not await server.reload(force=False)


async def test_etags_survive_a_restart(db: Path, http: aiohttp.ClientSession) -> None:
    tags = []
    for _ in range(2):
        s = await started(config(db), db)
        try:
            async with http.get(url(s, "/yealink.xml"), headers=ALICE) as resp:
                tags.append(resp.headers["ETag"])
        finally:
            await s.stop()
    assert tags[0] == tags[1]


async def test_number_settings_change_the_etag(db: Path, http: aiohttp.ClientSession) -> None:
    tags, numbers = [], []
    for fmt in ("national", "e164"):
        s = await started(config(db, number_format=fmt), db)
        try:
            async with http.get(url(s, "/yealink.xml"), headers=BOB) as resp:
                tags.append(resp.headers["ETag"])
                root = ET.fromstring(await resp.read())
                numbers.append([e.text for e in root.iterfind("DirectoryEntry/Telephone")])
        finally:
            await s.stop()
    assert tags[0] != tags[1]
    assert numbers[0][0] == "0012125550199" and numbers[1][0] == "+12125550199"


# ---- Cisco links and TLS -------------------------------------------------------------------------------


async def test_cisco_links_point_back_to_the_phones_own_url_and_a_hostile_host_is_not_echoed(
        server: PhonebookServer, http: aiohttp.ClientSession) -> None:
    host, port = server.addresses[0]
    async with http.get(url(server, "/cisco.xml?search=1"), headers=ALICE) as resp:
        root = ET.fromstring(await resp.read())
    assert root.tag == "CiscoIPPhoneInput"
    assert root.findtext("URL") == f"http://{host}:{port}/cisco.xml"
    async with http.get(url(server, "/snom.xml?search=1"), headers=ALICE) as resp:
        root = ET.fromstring(await resp.read())
    assert root.tag == "SnomIPPhoneInput" and root.findtext("URL") == f"http://{host}:{port}/snom.xml"
    async with http.get(url(server, "/cisco.xml"),
                        headers={**ALICE, "Host": 'evil"><x>.example/<script>'}) as resp:
        root = ET.fromstring(await resp.read())
    search = next(k.findtext("URL") for k in root.iterfind("SoftKeyItem") if k.findtext("Name") == "Search")
    assert search == f"http://{host}:{port}/cisco.xml?search=1"


async def test_https_with_the_configured_certificate(db: Path, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    s = await started(config(db, tls_cert=str(cert), tls_key=str(key)), db)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        host, port = s.addresses[0]
        async with aiohttp.ClientSession() as http, \
                http.get(f"https://{host}:{port}/yealink.xml", headers=ALICE, ssl=context) as resp:
            assert resp.status == 200
    finally:
        await s.stop()
