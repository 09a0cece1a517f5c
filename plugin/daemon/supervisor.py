"""Runs named services in one asyncio process: start, restart with back-off, reconcile, stop.

Each service gets a runner task that loops start -> run -> (crash) -> log -> back-off -> start again
with a fresh instance, until it is stopped. A crash is logged with its traceback, counted in
`pbxsync_service_restarts_total`, and shown by `status`; the rest of the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service, ServiceSpec, fingerprint
from pbxsync.sync.errors import UserError
from pbxsync.sync.model import utc_text

log = logging.getLogger("pbxsync.daemon")


class ServiceStartError(UserError):
    """A critical service could not start, so the daemon does not start either (one line, no traceback)."""


@dataclass(frozen=True)
class BackoffPolicy:
    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    stable_seconds: float = 60.0  # a service that ran this long before crashing starts over at `initial`

    def next_delay(self, previous: float | None, ran_for: float | None) -> float:
        if previous is None or (ran_for is not None and ran_for >= self.stable_seconds):
            return self.initial_seconds
        return min(previous * 2, self.max_seconds)


class _Runner:
    def __init__(self, spec: ServiceSpec, clock: Clock, backoff: BackoffPolicy) -> None:
        self.spec = spec
        self.digest = fingerprint(spec.settings)
        self.clock = clock
        self.backoff = backoff
        self.service: Service | None = None
        self.state = "starting"  # starting | running | backoff | stopping | stopped
        self.restarts = 0
        self.last_error = ""
        self.last_error_at: datetime | None = None
        self.since: datetime = clock.now()
        self.next_retry: datetime | None = None
        self.first_attempt: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._stopping = asyncio.Event()
        self.task = asyncio.create_task(self._loop(), name=f"service:{spec.name}")

    @property
    def name(self) -> str:
        return self.spec.name

    def _set_state(self, state: str) -> None:
        self.state = state
        self.since = self.clock.now()
        metrics.SERVICE_UP.labels(self.name).set(1 if state == "running" else 0)

    def _first(self, outcome: BaseException | None) -> None:
        if not self.first_attempt.done():
            self.first_attempt.set_result(outcome)

    async def _loop(self) -> None:
        delay: float | None = None
        while not self._stopping.is_set():
            started: datetime | None = None
            service: Service | None = None
            try:
                service = self.spec.factory()
                self.service = service
                self._set_state("starting")
                await service.start()
                started = self.clock.now()
                self._set_state("running")
                self._first(None)
                if self._stopping.is_set():  # stop() arrived while we were starting
                    await self._stop_service(service)
                    break
                log.info("service %s started", self.name, extra={"service": self.name})
                await service.run()
                if self._stopping.is_set():
                    break
                raise RuntimeError("its run() returned while it was meant to keep running")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the point of a supervisor: log, count, restart
                self.last_error = " ".join(str(exc).split())[:300] or type(exc).__name__
                self.last_error_at = self.clock.now()
                self._first(exc)
                metrics.ERRORS.labels("service").inc()
                log.error("service %s failed: %s", self.name, self.last_error, exc_info=exc,
                          extra={"service": self.name})
                if service is not None:
                    await self._stop_service(service)
                if self._stopping.is_set():
                    break
                ran_for = (self.clock.now() - started).total_seconds() if started else None
                delay = self.backoff.next_delay(delay, ran_for)
                self.next_retry = self.clock.now() + _seconds(delay)
                self._set_state("backoff")
                log.info("service %s restarts in %.0f s", self.name, delay, extra={"service": self.name})
                if await self._wait_or_stop(self.next_retry):
                    break
                self.next_retry = None
                self.restarts += 1
                metrics.SERVICE_RESTARTS.labels(self.name).inc()
        self._first(None)
        self._set_state("stopped")

    async def _wait_or_stop(self, until: datetime) -> bool:
        """Sleep until `until` on the daemon clock; True if stop() came first."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, stopper):
                t.cancel()
        return self._stopping.is_set()

    async def _stop_service(self, service: Service) -> None:
        try:
            await service.stop()
        except Exception as exc:  # a failing stop must not stop the others
            log.warning("service %s did not stop cleanly: %s", self.name, exc, extra={"service": self.name})

    async def stop(self, grace_seconds: float) -> None:
        """Ask the service to finish in-flight work; after `grace_seconds` its task is cancelled."""
        if self.task.done():
            return
        self._stopping.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        if self.state == "running" and self.service is not None:
            self.state = "stopping"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_service(self.service), max(0.0, deadline - loop.time()))
        done, _ = await asyncio.wait({self.task}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            log.warning("service %s did not stop within %.1f s; cancelling it", self.name, grace_seconds,
                        extra={"service": self.name})
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self._set_state("stopped")

    def status(self) -> dict[str, Any]:
        health = Health(False, self.last_error or self.state)
        if self.state == "running" and self.service is not None:
            try:
                health = self.service.health()
            except Exception as exc:  # a broken health() is itself a health problem
                health = Health(False, f"health check failed: {exc}")
        return {
            "name": self.name,
            "state": self.state,
            "ok": self.state == "running" and health.ok,
            "detail": health.detail,
            "data": health.data,
            "since": utc_text(self.since),
            "restarts": self.restarts,
            "last_error": self.last_error or None,
            "last_error_at": utc_text(self.last_error_at) if self.last_error_at else None,
            "next_retry": utc_text(self.next_retry) if self.next_retry else None,
        }


def _moves(old: ServiceSpec, new: ServiceSpec) -> bool:
    """A listener that changes every address it binds (same addresses: it must close before it rebinds)."""
    return bool(old.binds) and bool(new.binds) and not set(old.binds) & set(new.binds)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class Supervisor:
    def __init__(self, clock: Clock, backoff: BackoffPolicy | None = None, stop_timeout: float = 10.0) -> None:
        self.clock = clock
        self.backoff = backoff or BackoffPolicy()
        self.stop_timeout = stop_timeout
        self._runners: dict[str, _Runner] = {}

    @property
    def names(self) -> list[str]:
        return list(self._runners)

    def service(self, name: str) -> Service | None:
        runner = self._runners.get(name)
        return runner.service if runner is not None and runner.state == "running" else None

    async def start(self, specs: list[ServiceSpec], first_attempt_seconds: float = 30.0) -> None:
        """Start every spec; wait for each first attempt. A critical one that failed raises."""
        await self.apply(specs)
        runners = [self._runners[s.name] for s in specs]
        done, _ = await asyncio.wait({r.first_attempt for r in runners}, timeout=first_attempt_seconds)
        for runner in runners:
            outcome = runner.first_attempt.result() if runner.first_attempt in done else None
            if runner.spec.critical and outcome is not None:
                await self.stop()
                hint = " (is another pbxsync running? see `pbxsync status`)" if runner.name == "control" else ""
                raise ServiceStartError(f"{runner.name} could not start: {runner.last_error}{hint}")

    async def apply(self, specs: list[ServiceSpec]) -> list[str]:
        """Reconcile with a new set of specs: start new ones, stop removed ones, restart changed ones.

        Returns the names that were (re)started or stopped, for the reload log line.
        """
        wanted = {s.name: s for s in specs}
        touched: list[str] = []
        for name in [n for n in self._runners if n not in wanted]:
            await self._runners.pop(name).stop(self.stop_timeout)
            touched.append(f"-{name}")
        for name, spec in wanted.items():
            old = self._runners.get(name)
            if old is not None and old.digest == fingerprint(spec.settings):
                continue
            if old is not None and _moves(old.spec, spec):
                touched.append(await self._move(old, spec))
                continue
            if old is not None:
                await old.stop(self.stop_timeout)
            self._runners[name] = _Runner(spec, self.clock, self.backoff)
            touched.append(("~" if old is not None else "+") + name)
        return touched

    async def _move(self, old: _Runner, spec: ServiceSpec, within: float = 30.0) -> str:
        """Make before break: the listener on the new address starts while the old one still serves."""
        new = _Runner(spec, self.clock, self.backoff)
        done, _ = await asyncio.wait({new.first_attempt}, timeout=within)
        error = new.first_attempt.result() if done else TimeoutError("no answer")
        if error is not None or new.state != "running":
            await new.stop(self.stop_timeout)
            log.error("service %s could not move to %s (%s); it keeps serving on %s", spec.name,
                      ", ".join(spec.binds), new.last_error or error, ", ".join(old.spec.binds))
            return f"!{spec.name}"
        await old.stop(self.stop_timeout)
        self._runners[spec.name] = new
        metrics.SERVICE_UP.labels(spec.name).set(1)  # the old runner's stop reset the shared gauge
        return f"~{spec.name}"

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop everything in parallel within one deadline (SIGTERM)."""
        runners = list(self._runners.values())
        grace = grace_seconds if grace_seconds is not None else self.stop_timeout
        await asyncio.gather(*(r.stop(grace) for r in runners))

    def status(self) -> list[dict[str, Any]]:
        return [r.status() for r in self._runners.values()]
