"""Health that tells the truth (issue 14): the AMI gauge follows the link as it changes, a damaged database
and a failing after-sync step make `status` unhealthy. The daemon runs in-process against the simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbxsync.plugin.ami.simulator import AsteriskSimulator
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.sync_timers import SyncService
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.simulator.ews_server import EwsSimulator
from tests.support.metrics import sample
from tests.support.store_damage import damaged_database


def make_config(tmp_path: Path, ews: EwsSimulator, ami_port: int | None = None) -> Config:
    pbx = {"port": ami_port, "username": "pbxsync", "secret": "ami-secret"} if ami_port else {}
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": "svc-pbx@example.com",
                     "password": "svc-pw"},
        "sync": {"interval_minutes": 0},
        "users": [{"extension": "101", "email": "alice@example.com"}],
        "pbx": pbx,
        "agi": {"enabled": False}, "ldap": {"enabled": False},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
    }, str(tmp_path / "pbxsync.toml"))


async def until(predicate: object, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline
        await asyncio.sleep(0.01)


async def test_the_ami_gauge_follows_the_link_without_anyone_asking(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator, daemons: list[Daemon]) -> None:
    daemon = Daemon(make_config(tmp_path, ews, ami.port))
    await daemon.start()
    daemons.append(daemon)
    await until(lambda: sample("pbxsync_ami_connected") == 1.0)  # nobody called status()
    ami.drop_connections()
    await ami.stop()  # and it stays down
    await until(lambda: sample("pbxsync_ami_connected") == 0.0)


async def test_a_damaged_database_makes_status_unhealthy(
        tmp_path: Path, ews: EwsSimulator, daemons: list[Daemon]) -> None:
    config = make_config(tmp_path, ews)
    await damaged_database(Path(config.database))
    daemon = Daemon(config)
    await daemon.start()
    daemons.append(daemon)
    doc = daemon.status()
    assert doc["ok"] is False
    assert doc["store"]["ok"] is False and doc["store"]["integrity"] != "ok"


async def test_a_failing_after_sync_step_makes_sync_unhealthy(
        tmp_path: Path, ews: EwsSimulator, daemons: list[Daemon]) -> None:
    daemon = Daemon(make_config(tmp_path, ews))
    await daemon.start()
    daemons.append(daemon)
    service = daemon.supervisor.service("sync")
    assert isinstance(service, SyncService)

    async def broken_step(summary: PassSummary) -> None:
        raise RuntimeError("bookings table is locked")

    service.after_pass.append(broken_step)
    summary = await daemon.sync_now(None)
    assert summary.ok  # the sync itself worked
    doc = daemon.status()
    sync = next(s for s in doc["services"] if s["name"] == "sync")
    assert sync["ok"] is False and "after-sync step failed" in sync["detail"] and "locked" in sync["detail"]
    assert doc["ok"] is False
    service.after_pass.remove(broken_step)
    await daemon.sync_now(None)
    assert next(s for s in daemon.status()["services"] if s["name"] == "sync")["ok"] is True
