"""Issue 14's "Must show": a hostile LDAP client cannot stall FastAGI or AUTOCALL.

In one event loop, as the daemon runs them: the LDAP phonebook over 100k contacts, the FastAGI server
(caller-ID route) and AUTOCALL on the AMI simulator. An anonymous client sends, in one write, ten
searches whose filter is an OR of 500 `(o>=...)` assertions (about 7 KB each; no contact matches any of
them, so the old server evaluated all 500 on each of the 100k entries, ten seconds per search, on the
loop). Meanwhile caller-ID lookups must be answered and a meeting's AUTOCALL must start on time.

Twice: with the default limits (the cost estimate refuses the filter at once: adminLimitExceeded), and
with the cost estimate switched off and `~=` instead of `>=` (ranges are indexed now, so that `>=` filter
is answered from the index at once; `~=` still scans every entry): the searches run, in slices shared
out per loop turn, and when the client hangs up their remaining work is dropped.

The assertions are on behaviour with bounds far above CI noise (a lookup within a second, the first call
within two seconds of the start), far below the old stall (ten seconds per search, a hundred for ten).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.agi.service import build_agi_server
from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, SimUser
from pbxsync.plugin.autocall.planner import PlannerSettings
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.booking.model import ActionKind, BookingAction, BookingDraft, Participant, Role, StoredState
from pbxsync.plugin.booking.store import apply_actions
from pbxsync.plugin.daemon.clock import SystemClock
from pbxsync.plugin.ldap.ber import frame_length
from pbxsync.plugin.ldap.client import parse_response, search_request
from pbxsync.plugin.ldap.protocol import SEARCH_DONE, ResultCode
from pbxsync.plugin.ldap.server import LdapServer
from pbxsync.sync.config import AgiConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import open_store
from tests.support.ldap_phonebook import BASE_DN, make_config
from tests.support.sample_contacts import generate, write_contacts

CONTACTS = 100_000
PEOPLE = ("101", "102", "103")
HOSTILE = "(|" + "".join(f"(o>=zzz{i:04d})" for i in range(500)) + ")"
UNINDEXED = HOSTILE.replace(">=", "~=")


@pytest.fixture(scope="module")
def phonebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "pbxsync.db"

    async def migrate() -> None:
        await (await open_store(path)).close()

    asyncio.run(migrate())
    conn = sqlite3.connect(path)
    try:
        contacts = generate(CONTACTS, seed=14, mailboxes=("alice@example.com", "bob@example.com"))
        # Numbers for the first thousand only: parsing 200k numbers would double the test's time.
        write_contacts(conn, contacts[:1000] + [dataclasses.replace(c, phones=()) for c in contacts[1000:]])
    finally:
        conn.close()
    return path


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    s = AsteriskSimulator(phones=[Phone(p) for p in PEOPLE], time_scale=1.0,
                          users=[SimUser("pbxsync", "s3cret", frozenset({"call", "system"}),
                                         frozenset({"originate", "call", "reporting"}))])
    await s.start()
    yield s
    await s.stop()


async def agi_lookup(port: int, caller: str) -> float:
    """One caller-ID conversation as Asterisk holds it; its duration in seconds."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"agi_network: yes\nagi_network_script: callerid\nagi_request: agi://127.0.0.1/callerid\n"
                  f"agi_channel: PJSIP/trunk-00000001\nagi_callerid: {caller}\nagi_extension: 101\n"
                  "agi_arg_1: 101\n\n").encode())
    commands = 0
    while await reader.readline():
        commands += 1
        writer.write(b"200 result=1\n")
    writer.close()
    assert commands >= 1, "the caller-ID route sent nothing"
    return time.perf_counter() - started


async def read_results(reader: asyncio.StreamReader, count: int) -> list[int]:
    buffer = bytearray()
    codes: list[int] = []
    while len(codes) < count:
        buffer += await reader.read(65536)
        while (size := frame_length(buffer, 1 << 30)) is not None:
            response = parse_response(bytes(buffer[:size]))
            del buffer[:size]
            if response.tag == SEARCH_DONE:
                codes.append(response.code)
    return codes


@pytest.mark.parametrize("cost_estimate", [True, False], ids=["limits", "no-cost-estimate"])
async def test_ten_hostile_searches_in_one_write_leave_fastagi_and_autocall_on_time(
        phonebook: Path, sim: AsteriskSimulator, cost_estimate: bool) -> None:
    limits = {} if cost_estimate else {"max_filter_terms": 0, "max_search_cost": 0}
    config = make_config(phonebook, anonymous=True, **limits)
    config = dataclasses.replace(config, agi=AgiConfig(listen=ListenAddress("127.0.0.1", 0)))
    store = await open_store(phonebook)
    clock = SystemClock()
    ldap = LdapServer(config, phonebook)
    agi = build_agi_server(config, store, clock)
    ami = AmiClient(AmiSettings(port=sim.port, username="pbxsync", secret=Secret("s3cret"), action_timeout=5.0,
                                backoff_initial=0.01, backoff_max=0.05))
    autocall = AutocallService(store, ami, AutocallSettings(
        planner=PlannerSettings(retries=0, retry_delay=timedelta(0), grace=timedelta(minutes=10),
                                ring_timeout=timedelta(seconds=5)), reconnect_wait=0.05), clock=clock)
    hostile_writer: asyncio.StreamWriter | None = None
    try:
        await ldap.start()
        assert len(ldap.index.entries) == CONTACTS
        await agi.start()
        agi_port = agi.server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ami.start()
        assert await ami.wait_connected(5.0)
        start = datetime.now(UTC) + timedelta(seconds=2)
        people = tuple(Participant(ext, f"u{ext}@example.com", f"User {ext}", Role.HOST if i == 0 else Role.REQUIRED,
                                   "organizer" if i == 0 else "accept") for i, ext in enumerate(PEOPLE))
        draft = BookingDraft(f"uid-hostile-{cost_estimate}", "", "Hostile neighbour", "PBX AUTOCALL", start,
                             start + timedelta(minutes=30), "UTC", True, StoredState.SCHEDULED, None, "8001",
                             people[0].email, "101", True, people)
        await apply_actions(store, [BookingAction(ActionKind.CREATE, None, draft, ("test",))], datetime.now(UTC))
        await autocall.start()

        host, port = ldap.addresses[0]
        reader, hostile_writer = await asyncio.open_connection(host, port)
        hostile = HOSTILE if cost_estimate else UNINDEXED
        ten = b"".join(search_request(n, BASE_DN, hostile, ("cn",)) for n in range(1, 11))
        assert 6000 * 10 < len(ten) < 8000 * 10
        hostile_writer.write(ten)  # ten hostile searches in one write
        await hostile_writer.drain()
        await asyncio.sleep(0.05)  # let the server take them in

        latencies = [await agi_lookup(agi_port, "+49 30 1234567") for _ in range(5)]
        first_call_seen: datetime | None = None
        while first_call_seen is None:
            assert datetime.now(UTC) < start + timedelta(seconds=20), "AUTOCALL never originated"
            latencies.append(await agi_lookup(agi_port, "+49 30 1234567"))
            if sim.originates:
                first_call_seen = datetime.now(UTC)
        late = (first_call_seen - start).total_seconds()
        print(f"caller-ID lookups during the attack: max {max(latencies) * 1000:.1f} ms over {len(latencies)}; "
              f"first AUTOCALL call seen {late:.3f} s after the start")
        assert max(latencies) < 1.0, latencies  # the old server: ~10 s per hostile search ahead of it
        assert late < 2.0  # the old server: ~100 s late
        while len(sim.originates) < len(PEOPLE):
            assert datetime.now(UTC) < start + timedelta(seconds=5), "not everybody was called"
            await asyncio.sleep(0.01)

        if cost_estimate:  # refused at once, before any scan
            codes = await asyncio.wait_for(read_results(reader, 10), 5.0)
            assert codes == [ResultCode.ADMIN_LIMIT_EXCEEDED] * 10
            assert ldap.directory.refused_searches == 10
        else:  # still scanning; hanging up drops the rest of the work
            assert ldap.turns.waiting, "the hostile searches should still be running"
            hostile_writer.close()
            hostile_writer = None
            deadline = time.monotonic() + 5.0
            while ldap.turns.waiting or ldap.connections:
                assert time.monotonic() < deadline, "the work of a gone client was not dropped"
                await asyncio.sleep(0.01)
    finally:
        if hostile_writer is not None:
            hostile_writer.close()
        await autocall.stop()
        await ami.stop()
        await agi.close()
        await ldap.stop()
        await store.close()
