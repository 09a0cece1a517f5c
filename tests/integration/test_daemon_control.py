"""The daemon in-process: control endpoint (status, Sync now, reload), metrics, SIGHUP semantics."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbxsync.plugin.commands import status as status_cmd
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.control_client import DaemonError, daemon_status, reload_daemon, trigger_sync_in_daemon
from pbxsync.plugin.daemon.service import SiteService
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.errors import ConfigError, UserError
from pbxsync.sync.listen import ListenAddress
from tests.support.quiet_source import QuietSource


def make_config(tmp_path: Path, interval: int = 0) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"username": "svc@example.com", "server": "http://127.0.0.1:1/EWS/Exchange.asmx"},
        "sync": {"interval_minutes": interval},
        "users": [{"extension": "101", "email": "alice@example.com"},
                  {"extension": "102", "email": "bob@example.com"}],
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": "127.0.0.1:0"},
        "agi": {"enabled": False}, "ldap": {"enabled": False},
    }, str(tmp_path / "pbxsync.toml"))


def bound(daemon: Daemon, name: str) -> str:
    service = daemon.supervisor.service(name)
    assert isinstance(service, SiteService)
    return service.address


class Running:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.client_config = daemon.config  # the CLI finds the daemon at the configured socket


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    loads: list[object] = []

    def loader(path: str | None) -> Config:
        item = loads.pop(0)
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, Config)
        return item

    daemon = Daemon(make_config(tmp_path), make_source=lambda _c: QuietSource(), config_loader=loader)
    daemon.test_loads = loads  # type: ignore[attr-defined]
    await daemon.start()
    yield Running(daemon)
    await daemon.shutdown()


async def test_status_lists_every_service_healthy(running: Running) -> None:
    doc = await asyncio.to_thread(daemon_status, running.client_config)
    assert doc is not None
    assert {s["name"] for s in doc["services"]} == {"control", "metrics", "sync"}
    assert doc["ok"] is True
    assert all(s["state"] == "running" for s in doc["services"])


async def test_sync_now_runs_a_pass_in_the_daemon(running: Running) -> None:
    result = await asyncio.to_thread(trigger_sync_in_daemon, running.client_config, "101")
    assert result is not None and result["ok"] is True
    assert [u["extension"] for u in result["users"]] == ["101"]
    everyone = await asyncio.to_thread(trigger_sync_in_daemon, running.client_config, None)
    assert everyone is not None and sorted(u["extension"] for u in everyone["users"]) == ["101", "102"]
    with pytest.raises(DaemonError, match="no user with extension 999"):
        await asyncio.to_thread(trigger_sync_in_daemon, running.client_config, "999")


async def test_metrics_endpoint_serves_prometheus_text(running: Running) -> None:
    await asyncio.to_thread(trigger_sync_in_daemon, running.client_config, None)
    url = f"http://{bound(running.daemon, 'metrics')}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    assert 'pbxsync_sync_passes_total{result="ok",trigger="manual"}' in body
    assert 'pbxsync_service_up{service="sync"} 1.0' in body
    assert "pbxsync_sync_duration_seconds_bucket" in body
    assert 'pbxsync_bookings{state="scheduled"} 0.0' in body
    assert 'pbxsync_call_attempts{outcome="answered"} 0.0' in body


async def test_an_invalid_reload_keeps_the_old_config_and_logs_one_line(
        running: Running, caplog: pytest.LogCaptureFixture) -> None:
    daemon = running.daemon
    old = daemon.config
    daemon.test_loads.append(ConfigError(["sync.interval_minutes: must be 0 (off) or more"], "x.toml"))  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="pbxsync.daemon"):
        ok = await asyncio.to_thread(reload_daemon, running.client_config)
    assert ok is False
    assert daemon.config is old
    lines = [r.getMessage() for r in caplog.records if "reload" in r.getMessage()]
    assert lines == ["config reload failed, keeping the running config: x.toml: "
                     "sync.interval_minutes: must be 0 (off) or more"]


async def test_a_valid_reload_restarts_only_what_changed(running: Running) -> None:
    daemon = running.daemon
    control_before = daemon.supervisor.service("control")
    sync_before = daemon.supervisor.service("sync")
    fresh = replace(daemon.config, sync=replace(daemon.config.sync, interval_minutes=5))
    daemon.test_loads.append(fresh)  # type: ignore[attr-defined]
    assert await daemon.reload() is True
    assert daemon.config.sync.interval_minutes == 5
    assert daemon.supervisor.service("control") is control_before
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while daemon.supervisor.service("sync") in (None, sync_before):
        assert loop.time() < deadline
        await asyncio.sleep(0.001)


async def test_status_without_a_daemon_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_config(tmp_path)  # its socket file does not exist: no daemon
    assert await asyncio.to_thread(daemon_status, cfg) is None
    assert await asyncio.to_thread(trigger_sync_in_daemon, cfg, None) is None
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    cfg = replace(cfg, control=replace(cfg.control, socket="", listen=ListenAddress("127.0.0.1", port)))
    assert await asyncio.to_thread(daemon_status, cfg) is None
    toml = tmp_path / "c.toml"
    toml.write_text(f'database = "{tmp_path}/x.db"\n[exchange]\nusername = "s@example.com"\n'
                    f'[control]\nsocket = ""\nlisten = "127.0.0.1:{port}"\ntoken_file = "{token}"\n')
    with pytest.raises(UserError) as info:
        await asyncio.to_thread(status_cmd.status, argparse.Namespace(config=str(toml), json=False))
    assert str(info.value) == status_cmd.not_running_message(f"control.listen 127.0.0.1:{port}")
    assert "\n" not in str(info.value)


async def test_a_second_daemon_on_the_same_control_port_refuses_to_start(running: Running, tmp_path: Path) -> None:
    cfg = running.client_config
    other = Daemon(replace(cfg, database=str(tmp_path / "other.db")), make_source=lambda _c: QuietSource())
    with pytest.raises(Exception, match="control could not start"):
        await other.start()


async def test_a_reload_asked_over_the_socket_it_moves_is_answered_at_once(running: Running, tmp_path: Path) -> None:
    daemon = running.daemon
    moved = str(tmp_path / "moved.sock")
    daemon.test_loads.append(replace(daemon.config, control=replace(daemon.config.control, socket=moved)))  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.to_thread(reload_daemon, running.client_config) is True
    assert loop.time() - started < 5  # the old socket's close does not wait for the request that moved it
    assert daemon.config.control.socket == moved
    assert bound(daemon, "control") == moved
    assert (await asyncio.to_thread(daemon_status, daemon.config) or {}).get("services")
