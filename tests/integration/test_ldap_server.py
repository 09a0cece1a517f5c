"""The phonebook server on the wire: limits, protocol errors, paging/sort order, abandon, refresh."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pbxsync.plugin.ldap import LdapServer
from pbxsync.plugin.ldap.ber import encode_length, frame_length
from pbxsync.plugin.ldap.client import (
    abandon_request,
    bind_request,
    paged_control,
    paged_cookie,
    parse_response,
    search_request,
    sort_control,
    unbind_request,
)
from pbxsync.plugin.ldap.protocol import OID_NOTICE_OF_DISCONNECTION, OID_PAGED_RESULTS, SEARCH_DONE, SEARCH_ENTRY
from tests.support.ldap_phonebook import BASE_DN, make_config, make_store
from tests.support.sample_contacts import SampleContact, write_contacts

Start = Callable[..., Awaitable[LdapServer]]


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    return await make_store(tmp_path / "pbxsync.db")


@pytest.fixture
async def start(db: Path) -> AsyncIterator[Start]:
    servers: list[LdapServer] = []

    async def _start(**ldap: Any) -> LdapServer:
        server = LdapServer(make_config(db, **ldap), db)
        await server.start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop()


class Wire:
    """An asyncio raw client: write bytes, read whole LDAP messages, see EOF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = bytearray()

    @classmethod
    async def connect(cls, server: LdapServer) -> Wire:
        reader, writer = await asyncio.open_connection(*server.addresses[0])
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self) -> bytes | None:
        """The next message, or None at EOF."""
        while True:
            size = frame_length(self.buffer, 1 << 24)
            if size is not None:
                raw = bytes(self.buffer[:size])
                del self.buffer[:size]
                return raw
            chunk = await asyncio.wait_for(self.reader.read(65536), timeout=10)
            if not chunk:
                return None
            self.buffer += chunk

    async def search(self, request: bytes) -> tuple[list[Any], Any]:
        await self.send(request)
        entries = []
        while True:
            raw = await self.read()
            assert raw is not None, "connection closed mid-search"
            response = parse_response(raw)
            if response.tag == SEARCH_DONE:
                return entries, response
            entries.append(response)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def expect_notice_then_eof(wire: Wire, code: int) -> None:
    raw = await wire.read()
    assert raw is not None
    notice = parse_response(raw)
    assert notice.message_id == 0 and notice.code == code
    assert OID_NOTICE_OF_DISCONNECTION.encode() in raw
    assert await wire.read() is None


async def still_serves(server: LdapServer) -> None:
    wire = await Wire.connect(server)
    entries, done = await wire.search(search_request(1, BASE_DN, "(sn=king)", ("cn",)))
    assert done.code == 0 and [e.attributes["cn"] for e in entries] == [["Carol King"]]
    await wire.close()


async def test_garbage_closes_only_that_connection(start: Start) -> None:
    server = await start()
    bystander = await Wire.connect(server)
    wire = await Wire.connect(server)
    await wire.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await expect_notice_then_eof(wire, 2)
    entries, done = await bystander.search(search_request(7, BASE_DN, "(sn=smith)", ("cn",)))
    assert done.code == 0 and len(entries) == 1
    await bystander.close()
    await still_serves(server)


async def test_oversized_message_is_refused_before_it_is_read(start: Start) -> None:
    server = await start(max_request_bytes=4096)
    wire = await Wire.connect(server)
    await wire.send(b"\x30\x84\x00\x10\x00\x00")  # announces 1 MiB, sends nothing more
    await expect_notice_then_eof(wire, 2)


async def test_malformed_inner_element_is_a_protocol_error(start: Start) -> None:
    server = await start()
    wire = await Wire.connect(server)
    body = b"\x02\x01\x01" + b"\x63\x05\x04\x10abc"  # search whose base DN claims 16 bytes inside 5
    await wire.send(b"\x30" + encode_length(len(body)) + body)
    await expect_notice_then_eof(wire, 2)
    await still_serves(server)


async def test_deeply_nested_filter_is_refused(start: Start) -> None:
    server = await start()
    inner = b"\x87\x02cn"
    for _ in range(200):
        inner = b"\xa2" + encode_length(len(inner)) + inner
    op = (b"\x04\x00" + b"\x0a\x01\x02\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00" + inner + b"\x30\x00")
    body = b"\x02\x01\x01" + b"\x63" + encode_length(len(op)) + op
    wire = await Wire.connect(server)
    await wire.send(b"\x30" + encode_length(len(body)) + body)
    await expect_notice_then_eof(wire, 2)


async def test_connection_limit(start: Start) -> None:
    server = await start(max_connections=2)
    first, second = await Wire.connect(server), await Wire.connect(server)
    await first.search(search_request(1, BASE_DN, "(sn=king)"))
    await second.search(search_request(1, BASE_DN, "(sn=king)"))
    third = await Wire.connect(server)
    await expect_notice_then_eof(third, 51)
    await first.close()
    deadline = asyncio.get_running_loop().time() + 10
    while len(server.connections) > 1:  # the server notices the close
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    fourth = await Wire.connect(server)
    _, done = await fourth.search(search_request(1, BASE_DN, "(sn=king)"))
    assert done.code == 0
    await second.close()
    await fourth.close()


async def test_pipelined_requests_are_answered_in_order(start: Start) -> None:
    server = await start()
    wire = await Wire.connect(server)
    await wire.send(bind_request(1) + search_request(2, BASE_DN, "(sn=king)", ("cn",))
                    + search_request(3, BASE_DN, "(sn=smith)", ("cn",)))
    seen = []
    while len(seen) < 5:
        raw = await wire.read()
        assert raw is not None
        response = parse_response(raw)
        seen.append((response.message_id, response.tag))
    assert seen == [(1, 0x61), (2, SEARCH_ENTRY), (2, SEARCH_DONE), (3, SEARCH_ENTRY), (3, SEARCH_DONE)]
    await wire.send(unbind_request(4))
    assert await wire.read() is None


async def test_client_that_does_not_read_is_flow_controlled(start: Start) -> None:
    server = await start()
    wire = await Wire.connect(server)
    burst = b"".join(search_request(i, BASE_DN, "(objectClass=*)") for i in range(1, 401))
    await wire.send(burst)  # 400 searches x 7 entries, unread while they are sent
    done = 0
    while done < 400:
        raw = await wire.read()
        assert raw is not None
        if parse_response(raw).tag == SEARCH_DONE:
            done += 1
    await wire.close()
    assert server.searches >= 400


async def test_paging_with_sort_on_the_wire_and_abandon(start: Start) -> None:
    server = await start()
    wire = await Wire.connect(server)
    pages: list[list[str]] = []
    cookie = b""
    message_id = 1
    while True:
        entries, done = await wire.search(search_request(
            message_id, BASE_DN, "(sn>=K)", ("sn",), controls=sort_control("sn", critical=True)
            + paged_control(2, cookie)))
        assert done.code == 0
        pages.append([e.attributes["sn"][0] for e in entries])
        total, cookie = paged_cookie(done.controls[OID_PAGED_RESULTS])
        assert total == 6
        message_id += 1
        if not cookie:
            break
    assert pages == [["King", "Miller"], ["Mülheim", "Müller"], ["Reception", "Smith"]]
    # abandon a paged search: its cookie is forgotten
    _, done = await wire.search(search_request(20, BASE_DN, "(objectClass=person)", controls=paged_control(2)))
    _, cookie = paged_cookie(done.controls[OID_PAGED_RESULTS])
    await wire.send(abandon_request(21, 20))
    _, done = await wire.search(search_request(22, BASE_DN, "(objectClass=person)", controls=paged_control(2, cookie)))
    assert done.code == 53
    await wire.close()


async def test_size_limit_over_pages(start: Start) -> None:
    server = await start()
    wire = await Wire.connect(server)
    entries, done = await wire.search(search_request(1, BASE_DN, "(objectClass=person)", size_limit=3,
                                                     controls=paged_control(2)))
    assert len(entries) == 2 and done.code == 0
    _, cookie = paged_cookie(done.controls[OID_PAGED_RESULTS])
    entries, done = await wire.search(search_request(2, BASE_DN, "(objectClass=person)", size_limit=3,
                                                     controls=paged_control(2, cookie)))
    assert len(entries) == 1 and done.code == 4
    await wire.close()


async def test_unknown_critical_control_and_unknown_sort_attribute(start: Start) -> None:
    from pbxsync.plugin.ldap.protocol import encode_control

    server = await start()
    wire = await Wire.connect(server)
    _, done = await wire.search(search_request(1, BASE_DN, "(cn=*)",
                                               controls=encode_control("1.2.3.4", None, critical=True)))
    assert done.code == 12
    entries, done = await wire.search(search_request(2, BASE_DN, "(cn=*)", controls=encode_control("1.2.3.4")))
    assert done.code == 0 and len(entries) == 6
    _, done = await wire.search(search_request(3, BASE_DN, "(cn=*)", controls=sort_control("nope", critical=True)))
    assert done.code == 12
    entries, done = await wire.search(search_request(4, BASE_DN, "(cn=*)", controls=sort_control("nope")))
    assert done.code == 0 and len(entries) == 6
    await wire.close()


async def test_scopes_and_bases(start: Start) -> None:
    server = await start()
    wire = await Wire.connect(server)
    entries, _ = await wire.search(search_request(1, BASE_DN, "(objectClass=*)", scope=0))
    assert [e.dn for e in entries] == [BASE_DN]
    entries, _ = await wire.search(search_request(2, BASE_DN, "(objectClass=*)", scope=1))
    assert len(entries) == 6 and BASE_DN not in [e.dn for e in entries]
    entries, _ = await wire.search(search_request(3, BASE_DN, "(objectClass=*)", scope=2))
    assert len(entries) == 7
    contact_dn = next(e.dn for e in entries if e.dn != BASE_DN)
    entries, _ = await wire.search(search_request(4, contact_dn.upper(), "(objectClass=*)", scope=0))
    assert [e.dn for e in entries] == [contact_dn]
    entries, _ = await wire.search(search_request(5, "dc=example,dc=com", "(sn=king)", scope=2))
    assert len(entries) == 1  # a parent of the phonebook works as a base
    _, done = await wire.search(search_request(6, f"uid=nobody,{BASE_DN}", "(objectClass=*)", scope=0))
    assert done.code == 32
    _, done = await wire.search(search_request(7, "dc=elsewhere", "(objectClass=*)"))
    assert done.code == 32
    await wire.close()


async def test_refresh_picks_up_store_changes(start: Start, db: Path) -> None:
    server = await start()
    conn = sqlite3.connect(db)
    write_contacts(conn, [SampleContact("alice@example.com", "A9", "Åsa Lindqvist", "Åsa", "Lindqvist",
                                        phones=(("business", "+46 8 123 456 78"),))])
    conn.close()
    server.refresh()
    deadline = asyncio.get_running_loop().time() + 10
    while server.health()["contacts"] != 7:
        assert asyncio.get_running_loop().time() < deadline, server.health()
        await asyncio.sleep(0.01)
    wire = await Wire.connect(server)
    entries, _ = await wire.search(search_request(1, BASE_DN, "(telephoneNumber=*12345678*)", ("cn",)))
    assert [e.attributes["cn"] for e in entries] == [["Åsa Lindqvist"]]
    await wire.close()
    assert await server.reload(force=False) is False  # nothing changed since


async def test_polling_notices_a_commit(start: Start, db: Path) -> None:
    server = await start(refresh_seconds=0.05)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM contacts WHERE item_id = 'B1'")
    conn.close()
    deadline = asyncio.get_running_loop().time() + 10
    while server.health()["contacts"] != 5:
        assert asyncio.get_running_loop().time() < deadline, server.health()
        await asyncio.sleep(0.01)


async def test_unreadable_store_serves_empty_and_reports(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    server = LdapServer(make_config(missing), missing)
    await server.start()
    try:
        health = server.health()
        assert health["ok"] is False and "cannot read contacts" in health["last_error"]
        wire = await Wire.connect(server)
        entries, done = await wire.search(search_request(1, BASE_DN, "(cn=*)"))
        assert done.code == 0 and entries == []
        await wire.close()
    finally:
        await server.stop()


async def test_idle_connections_are_closed(db: Path) -> None:
    now = [0.0]
    server = LdapServer(make_config(db, idle_timeout_seconds=0.05), db, clock=lambda: now[0])
    await server.start()
    try:
        wire = await Wire.connect(server)
        await wire.search(search_request(1, BASE_DN, "(sn=king)"))
        now[0] = 100.0  # the injected clock says the connection has been idle for long
        assert await wire.read() is None
    finally:
        await server.stop()


# ---- issue 14: hostile neighbours -----------------------------------------------------------------------

async def test_connection_limit_per_source_address(start: Start) -> None:
    server = await start(max_connections_per_source=2)
    first, second = await Wire.connect(server), await Wire.connect(server)
    third = await Wire.connect(server)
    await expect_notice_then_eof(third, 51)
    await first.close()
    while len(server.connections) > 1:
        await asyncio.sleep(0.01)
    await still_serves(server)  # a place is free again
    await second.close()


async def test_wrong_binds_are_answered_later_and_later_on_the_wire(start: Start) -> None:
    server = await start(anonymous=False)
    wire = await Wire.connect(server)
    loop = asyncio.get_running_loop()
    took = []
    for n in range(4):
        began = loop.time()
        await wire.send(bind_request(n + 1, "201", "wrong"))
        raw = await wire.read()
        assert raw is not None and parse_response(raw).code == 49
        took.append(loop.time() - began)
    assert max(took[:3]) < 0.4 <= took[3], took  # three free tries (typos), then a growing delay
    other = await Wire.connect(server)
    await other.send(bind_request(1, "202", "bob-secret"))  # another account is not held up by it
    raw = await other.read()
    assert raw is not None and parse_response(raw).code == 0
    await wire.close()
    await other.close()


async def test_absurd_filters_are_refused_before_they_run(start: Start) -> None:
    server = await start(anonymous=True, max_search_cost=10)
    wire = await Wire.connect(server)
    many = "(|" + "".join(f"(o>=zzz{i:04d})" for i in range(100)) + ")"
    _, done = await wire.search(search_request(1, BASE_DN, many, ("cn",)))
    assert done.code == 11  # adminLimitExceeded: more assertions than max_filter_terms
    deep = "(cn=a)"
    for _ in range(9):
        deep = f"(&{deep}(sn=b))"
    _, done = await wire.search(search_request(2, BASE_DN, deep, ("cn",)))
    assert done.code == 11
    _, done = await wire.search(search_request(3, BASE_DN, "(|(cn~=muller)(sn~=smith))", ("cn",)))
    assert done.code == 53  # unwillingToPerform: two unindexed scans of 6 entries cost 12 > 10
    entries, done = await wire.search(search_request(4, BASE_DN, "(sn=king)", ("cn",)))
    assert done.code == 0 and len(entries) == 1  # an indexed search is fine
    assert server.health()["refused_searches"] == 3
    await wire.close()


async def test_a_search_is_dropped_when_its_client_hangs_up(start: Start) -> None:
    server = await start(anonymous=True, max_filter_terms=0, max_search_cost=0)
    heavy = "(|" + "".join(f"(cn~=zz{i:03d})" for i in range(400)) + ")"
    wire = await Wire.connect(server)
    before = server.turns.runs
    await wire.send(b"".join(search_request(n, BASE_DN, heavy, ("cn",)) for n in range(1, 200)))
    while server.turns.runs == before:
        await asyncio.sleep(0.001)
    await wire.close()
    while server.connections:
        await asyncio.sleep(0.01)
    assert server.turns.waiting == 0  # nothing of the gone client is left to run
    await still_serves(server)
