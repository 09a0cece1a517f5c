"""`pbxsync run`: the daemon's lifecycle around the supervisor.

Start: open (and migrate) the store, start every service; a critical one that cannot start (the
control port is taken: another daemon runs) ends the process with one clear line.
SIGTERM/SIGINT: stop every service within `stop_timeout` (in-flight syncs and call attempts finish
their transactions; what is cut off after the deadline rolls back), then close the store.
SIGHUP: re-read and re-validate the config; on error keep the old one and log one line; on success
restart only the services whose settings changed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from dataclasses import replace
from datetime import datetime
from importlib.metadata import version
from typing import Any

from pbxsync.plugin import logs, metrics
from pbxsync.plugin.daemon.clock import Clock, SystemClock
from pbxsync.plugin.daemon.supervisor import BackoffPolicy, Supervisor
from pbxsync.plugin.daemon.sync_timers import SourceFactory, SyncService
from pbxsync.plugin.daemon.wiring import DaemonContext, build_specs, default_source_factory
from pbxsync.plugin.user_settings import effective_config, load_choices
from pbxsync.sync.config import Config, load_config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.errors import PbxsyncError, ServiceUnavailableError
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import NOT_CHECKED, Store, open_store

log = logging.getLogger("pbxsync.daemon")

VERSION = version("pbxsync")  # from the installed distribution's metadata: pyproject.toml is the one place


class Daemon:
    def __init__(self, config: Config, *, clock: Clock | None = None, make_source: SourceFactory | None = None,
                 backoff: BackoffPolicy | None = None, stop_timeout: float = 10.0,
                 config_loader: Any = None, debug: bool = False) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.make_source = make_source or default_source_factory
        self.supervisor = Supervisor(self.clock, backoff, stop_timeout)
        self.stop_timeout = stop_timeout
        self.started: datetime | None = None
        self.ctx: DaemonContext | None = None
        self._load_config = config_loader or load_config
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        # "Sync now" requests that arrive while the same pass runs join it instead of starting another one:
        # 40 clicks (or a flood of POSTs) are one pass. Its result is as fresh as what the callers asked for
        # within the pass's duration; a later click after it ends starts a new one.
        self._passes: dict[str | None, asyncio.Future[PassSummary]] = {}
        self.debug = debug

    # ---- ControlTarget
    def status(self) -> dict[str, Any]:
        services = self.supervisor.status()
        store = self._store_status()
        return {
            "pid": os.getpid(),
            "version": VERSION,
            "started": utc_text(self.started) if self.started else None,
            "now": utc_text(self.clock.now()),
            "config": self.config.path,
            "database": self.config.database,
            "ok": store["ok"] and all(s["ok"] for s in services),
            "store": store,
            "services": services,
        }

    def _store_status(self) -> dict[str, Any]:
        """The database's health: the integrity check at start (PRAGMA quick_check) decides it."""
        integrity = self.store.integrity if self.ctx is not None else "not open"
        # NOT_CHECKED: a store handed in by the caller (tests, the demo) that was opened without the check.
        return {"ok": integrity in ("ok", NOT_CHECKED), "integrity": integrity[:300]}

    async def sync_now(self, extension: str | None) -> PassSummary:
        service = self.supervisor.service("sync")
        if not isinstance(service, SyncService):
            raise ServiceUnavailableError("the sync service is not running (see pbxsync status)")
        running = self._passes.get(extension)
        if running is None:
            running = asyncio.ensure_future(service.sync_now(service.resolve_users(extension)))
            self._passes[extension] = running
            running.add_done_callback(lambda _done: self._passes.pop(extension, None))
        # shielded: one caller going away must not cancel the pass the others wait for
        return await asyncio.shield(running)

    async def reload(self) -> bool:
        async with self._reload_lock:  # two quick SIGHUPs apply one after the other
            return await self._reload()

    async def _reload(self) -> bool:
        try:
            # in a thread: a `_command` secret runs a program (up to 10 s) that must not stall AUTOCALL/FastAGI
            fresh = await asyncio.to_thread(self._load_config, self.config.path or None)
        except PbxsyncError as exc:
            metrics.CONFIG_RELOADS.labels("error").inc()
            log.error("config reload failed, keeping the running config: %s", " | ".join(str(exc).splitlines()))
            return False
        if fresh.database != self.config.database:
            log.warning("config reload: database path changes need a restart; keeping %s", self.config.database)
            fresh = replace(fresh, database=self.config.database)
        logs.register_config_secrets(fresh)
        logging.getLogger().setLevel(logs.level_from(fresh.log.level, self.debug))
        self.config = fresh
        assert self.ctx is not None
        self.ctx.config = await self._with_user_settings(fresh)
        touched = await self.supervisor.apply(build_specs(self.ctx))
        metrics.CONFIG_RELOADS.labels("ok").inc()
        log.info("config reloaded; services changed: %s", ", ".join(touched) or "none")
        return True

    async def _with_user_settings(self, config: Config) -> Config:
        """The file's config with the settings users chose on the portal (plugin.user_settings)."""
        return effective_config(config, await load_choices(self.store))

    async def apply_user_settings(self) -> None:
        """A user changed their settings: run the parts with them (only the parts they touch restart)."""
        async with self._reload_lock:
            assert self.ctx is not None
            self.ctx.config = await self._with_user_settings(self.config)
            touched = await self.supervisor.apply(build_specs(self.ctx))
        log.info("user settings applied; services changed: %s", ", ".join(touched) or "none")

    # ---- lifecycle
    def request_stop(self) -> None:
        self._stop.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def start(self, store: Store | None = None) -> None:
        self.store = store or await open_store(self.config.database, self.config.database_group,
                                                 check_integrity=True)
        self.ctx = DaemonContext(await self._with_user_settings(self.config), self.store, self.clock, self,
                                 self.make_source, user_settings_changed=self.apply_user_settings)
        self.started = self.clock.now()
        try:
            await self.supervisor.start(build_specs(self.ctx))
        except BaseException:
            await self.store.close()
            raise
        self._ready.set()
        # What is alive once every part is up (config, caches, imported modules: ~100k objects with the
        # portal) lives as long as the process: keep it out of the cyclic GC's full scans, each of which
        # stalled the event loop for 20-80 ms (every page, AGI answer and AMI event waits behind it).
        gc.freeze()
        log.info("pbxsync %s running (pid %d): %s", VERSION, os.getpid(), ", ".join(self.supervisor.names))

    async def shutdown(self) -> None:
        log.info("stopping (deadline %.0f s)", self.stop_timeout)
        await self.supervisor.stop(self.stop_timeout)
        if self.ctx is not None and self.ctx.bookings_gauge is not None:
            metrics.unregister_refresher(self.ctx.bookings_gauge)
        await self.store.close()
        log.info("stopped")

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or request_stop); SIGHUP reloads."""
        await self.start()
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            task = loop.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        installed: list[signal.Signals] = []
        for sig, callback in ((signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
                              (signal.SIGHUP, on_hup)):
            try:
                loop.add_signal_handler(sig, callback)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests) or no signals
                pass
        try:
            await self._stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.shutdown()
        return 0
