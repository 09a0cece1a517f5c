"""The parts count into plugin.metrics: FastAGI requests and their duration. (AUTOCALL's calls and start skew:
tests/integration/test_autocall_simulator.py, beside the agent it runs.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from pbxsync.plugin.agi.server import AgiError, AgiSession, FastAgiServer
from pbxsync.plugin.agi.service import build_agi_server
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.config import AgiConfig, Config, SyncConfig, UserConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.store.db import Store
from tests.support.agi import T0, add_contact, env_block, fake_asterisk, insert_booking
from tests.support.metrics import sample


def agi_requests(service: str, result: str) -> float:
    return sample("pbxsync_agi_requests_total", service=service, result=result)


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
