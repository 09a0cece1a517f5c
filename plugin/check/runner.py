"""Runs every preflight check for a config, in the order an admin would fix things."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pbxsync.plugin.check.ami import check_ami
from pbxsync.plugin.check.exchange import SourceFactory, check_exchange
from pbxsync.plugin.check.local import check_database, check_ldap_privacy, check_port, check_private_files, listeners
from pbxsync.plugin.check.notices import check_notices
from pbxsync.plugin.check.web import check_web
from pbxsync.plugin.check.writeback import check_write_back
from pbxsync.plugin.daemon.control_client import DaemonError, daemon_status
from pbxsync.sync.config import Config
from pbxsync.sync.preflight import CheckResult, failed, passed
from pbxsync.sync.sources.factory import make_source as default_make_source


def config_result(config: Config) -> CheckResult:
    users = len(config.users)
    return passed("config", f"{config.path or 'config'} is valid ({users} user{'s' if users != 1 else ''}, "
                  f"backend {config.exchange.backend})")


def _daemon_status(config: Config) -> dict[str, Any] | None:
    try:
        return daemon_status(config)
    except DaemonError:
        return None


def daemon_result(doc: dict[str, Any]) -> CheckResult:
    """A running daemon's own view: a part it reports unhealthy (a failing after-sync step, a damaged
    database) fails the check too, not only `status`."""
    sick = [f"{s.get('name')}: {s.get('detail')}" for s in doc.get("services", []) if not s.get("ok")]
    store = doc.get("store")
    if isinstance(store, dict) and not store.get("ok", True):
        sick.insert(0, f"database: {store.get('integrity')}")
    if not sick:
        return passed("daemon health", f"pid {doc.get('pid')}: every part healthy")
    return failed("daemon health", f"pid {doc.get('pid')}: " + "; ".join(sick)[:500],
                  "see `pbxsync status` and the log (journalctl -u pbxsync)")


async def run_checks(config: Config, make_source: SourceFactory | None = None, now: datetime | None = None,
                     within: float = 30.0) -> list[CheckResult]:
    results = [config_result(config), await asyncio.to_thread(check_database, config)]
    exchange, ami = await asyncio.gather(
        check_exchange(config, make_source or default_make_source, now or datetime.now(UTC), within),
        check_ami(config, min(within, 10.0)))
    results += exchange + ami
    results += await check_notices(config, make_source or default_make_source)
    results += await check_write_back(config, make_source or default_make_source)
    results += await asyncio.to_thread(check_private_files, config)
    doc = await asyncio.to_thread(_daemon_status, config)
    if doc is not None:
        results.append(daemon_result(doc))
    results += [check_port(listener, doc is not None) for listener in listeners(config)]
    results += check_ldap_privacy(config)
    results += await asyncio.to_thread(check_web, config)
    return results
