"""Fixtures several integration modules share. A module that needs another world defines its own fixture
of the same name, which wins over these (pytest's override by the nearer definition)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest

from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation

MAILBOXES = Path(__file__).resolve().parents[1] / "data" / "mailboxes.json"
# The AMI user of dialplan/pbxsync-manager.conf: the read/write classes pbxsync needs, no more.
LEAST_PRIVILEGE = SimUser("pbxsync", "ami-secret", frozenset({"call", "system"}),
                          frozenset({"originate", "call", "reporting"}))


class Stoppable(Protocol):
    async def stop(self) -> None: ...


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    """The EWS simulator serving tests/data/mailboxes.json."""
    with EwsSimulator(Organisation.load_file(MAILBOXES)) as sim:
        yield sim


@pytest.fixture
async def ami() -> AsyncIterator[AsteriskSimulator]:
    """The AMI simulator with one user, pbxsync / ami-secret, holding the least-privilege classes."""
    sim = AsteriskSimulator(users=[LEAST_PRIVILEGE], login_fail_delay=0.0)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def clock() -> FakeClock:
    """The clock AUTOCALL runs on, starting now; a test moves it by hand."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    """In-process daemons a test started; shut down at teardown."""
    made: list[Daemon] = []
    yield made
    for daemon in made:
        await daemon.shutdown()


@pytest.fixture
async def agents() -> AsyncIterator[list[Stoppable]]:
    """AUTOCALL agents a test started; stopped at teardown."""
    made: list[Stoppable] = []
    yield made
    for a in made:
        await a.stop()
