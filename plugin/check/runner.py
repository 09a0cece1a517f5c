"""Runs every preflight check for a config, in the order an admin would fix things."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pbxsync.plugin.check.ami import check_ami
from pbxsync.plugin.check.exchange import SourceFactory, check_exchange
from pbxsync.plugin.check.local import check_database, check_port, listeners
from pbxsync.plugin.daemon.control_client import DaemonError, daemon_status
from pbxsync.sync.config import Config
from pbxsync.sync.preflight import CheckResult, passed
from pbxsync.sync.sources.factory import make_source as default_make_source


def config_result(config: Config) -> CheckResult:
    users = len(config.users)
    return passed("config", f"{config.path or 'config'} is valid ({users} user{'s' if users != 1 else ''}, "
                  f"backend {config.exchange.backend})")


def _daemon_running(config: Config) -> bool:
    try:
        return daemon_status(config) is not None
    except DaemonError:
        return False


async def run_checks(config: Config, make_source: SourceFactory | None = None, now: datetime | None = None,
                     within: float = 30.0) -> list[CheckResult]:
    results = [config_result(config), await asyncio.to_thread(check_database, config)]
    exchange, ami = await asyncio.gather(
        check_exchange(config, make_source or default_make_source, now or datetime.now(UTC), within),
        check_ami(config, min(within, 10.0)))
    results += exchange + ami
    running = await asyncio.to_thread(_daemon_running, config)
    results += [check_port(listener, running) for listener in listeners(config)]
    return results
