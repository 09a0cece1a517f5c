"""The parts count into plugin.metrics: AUTOCALL calls and start skew, FastAGI requests and their duration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from pbxsync.plugin.agi.server import AgiError, AgiSession, FastAgiServer
from pbxsync.plugin.agi.service import build_agi_server
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.config import AgiConfig, Config, SyncConfig, UserConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.store.db import Store, open_store
from tests.integration.test_autocall_simulator import PHONES, Agent, book, draft, until
from tests.unit.test_agi_callerid import add_contact
from tests.unit.test_agi_room import insert_booking
from tests.unit.test_agi_server import env_block, fake_asterisk

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def agi_requests(service: str, result: str) -> float:
    return sample("pbxsync_agi_requests_total", service=service, result=result)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await open_store(":memory:")
    yield s
    await s.close()


@pytest.fixture
async def agi(store: Store) -> AsyncIterator[FastAgiServer]:
    config = Config(sync=SyncConfig(default_region="DE"), agi=AgiConfig(listen=ListenAddress("127.0.0.1", 0)),
                    users=[UserConfig(extension="101", email=["alice@example.com"], name="Alice Admin")])
    server = build_agi_server(config, store, FakeClock(T0))
    await server.start()
    yield server
    await server.close()


async def test_agi_requests_counted_by_service_and_result(store: Store, agi: FastAgiServer) -> None:
    await add_contact(store, "alice@example.com", "Erika Muster", "+49 30 1234-4711")
    await insert_booking(store, "8001", T0, T0 + timedelta(hours=1))
    cases = [(env_block("callerid", callerid="03012344711"), "callerid", "ok"),
             (env_block("callerid", callerid="0309999999"), "callerid", "miss"),
             (env_block("room", callerid="101", arg_1="8001"), "room", "ok"),
             (env_block("room", callerid="101", arg_1="8002"), "room", "rejected"),
             (env_block("nosuchservice"), "unknown", "rejected")]
    for block, service, result in cases:
        before = agi_requests(service, result)
        durations = sample("pbxsync_agi_request_duration_seconds_count", service=service)
        await fake_asterisk(agi.port, block)  # returns when the server has closed the connection
        assert agi_requests(service, result) == before + 1, (service, result)
        if service != "unknown":  # refused before a route was chosen: no handling time to measure
            assert sample("pbxsync_agi_request_duration_seconds_count", service=service) == durations + 1


async def test_agi_handler_failure_counts_as_an_agi_error() -> None:
    async def broken(session: AgiSession) -> None:
        raise AgiError("boom")

    server = FastAgiServer({"callerid": broken}, "127.0.0.1", 0)
    await server.start()
    try:
        before, errors = agi_requests("callerid", "error"), sample("pbxsync_errors_total", kind="agi")
        await fake_asterisk(server.port, env_block())
        assert agi_requests("callerid", "error") == before + 1
        assert sample("pbxsync_errors_total", kind="agi") == errors + 1
    finally:
        await server.close()


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    s = AsteriskSimulator(phones=PHONES, time_scale=1.0,
                          users=[SimUser("pbxsync", "s3cret", frozenset({"call", "system"}),
                                         frozenset({"originate", "call", "reporting"}))])
    await s.start()
    yield s
    await s.stop()


async def test_autocall_counts_calls_by_outcome_and_the_first_originates_skew(sim: AsteriskSimulator,
                                                                             store: Store) -> None:
    calls = {o: sample("pbxsync_calls_total", outcome=o) for o in ("answered", "busy")}
    skews = sample("pbxsync_call_start_skew_seconds_count")
    skew_sum = sample("pbxsync_call_start_skew_seconds_sum")
    start = datetime.now(UTC) - timedelta(seconds=2)  # already running: the first call is >= 2 s late
    await book(store, draft(["101", "199"], start))
    agent = Agent(sim, store)
    await agent.start()
    try:
        await until(lambda: len(sim.originates) == 3)  # 101 answers; 199 is busy, retried once
        await until(lambda: not agent.service.health().running_bookings)
    finally:
        await agent.stop()
    assert sample("pbxsync_calls_total", outcome="answered") == calls["answered"] + 1
    assert sample("pbxsync_calls_total", outcome="busy") == calls["busy"] + 2
    # one observation per booking (its first Originate), not one per call or retry: whether a call is the
    # first is read from the stored attempts, so a restarted agent does not observe it again either
    assert sample("pbxsync_call_start_skew_seconds_count") == skews + 1
    assert sample("pbxsync_call_start_skew_seconds_sum") - skew_sum >= 2.0

