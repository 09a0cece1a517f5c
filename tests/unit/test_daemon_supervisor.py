"""The supervisor: crashed services are logged and restarted with back-off, stops honour a deadline."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.service import Health, Service, ServiceSpec, TaskService, fingerprint
from pbxsync.plugin.daemon.supervisor import BackoffPolicy, ServiceStartError, Supervisor
from pbxsync.sync.secrets import Secret


class Crashy(Service):
    """Crashes in run() the first `crashes` times it is built, then runs until stopped."""

    built = 0

    def __init__(self, crashes: int, log: list[str]) -> None:
        super().__init__()
        self.name = "crashy"
        self.crashes = crashes
        self.log = log
        Crashy.built += 1
        self.generation = Crashy.built

    async def start(self) -> None:
        self.log.append(f"start{self.generation}")

    async def run(self) -> None:
        if self.generation <= self.crashes:
            raise RuntimeError(f"boom {self.generation}")
        await super().run()

    async def stop(self) -> None:
        self.log.append(f"stop{self.generation}")
        await super().stop()


async def wait_until(predicate: object, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


def test_backoff_doubles_caps_and_resets_after_a_stable_run() -> None:
    policy = BackoffPolicy(initial_seconds=1, max_seconds=8, stable_seconds=60)
    delays = []
    delay = None
    for _ in range(6):
        delay = policy.next_delay(delay, ran_for=1)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 8, 8]
    assert policy.next_delay(8, ran_for=61) == 1


def test_fingerprint_sees_secret_changes_without_showing_them() -> None:
    assert fingerprint(("x", Secret("a"))) != fingerprint(("x", Secret("b")))
    assert fingerprint(("x", Secret("a", "file f"))) == fingerprint(("x", Secret("a", "env E")))
    assert "a" not in repr(Secret("a-secret-value"))


async def test_a_crashed_service_is_logged_and_restarted_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    Crashy.built = 0
    clock = FakeClock()
    events: list[str] = []
    sup = Supervisor(clock, BackoffPolicy(initial_seconds=5, max_seconds=60))
    with caplog.at_level(logging.INFO, logger="pbxsync.daemon"):
        await sup.start([ServiceSpec("crashy", lambda: Crashy(2, events))])
        await clock.wait_for_sleepers(1)
        (st,) = sup.status()
        assert st["state"] == "backoff"
        assert st["last_error"] == "boom 1"
        assert not st["ok"]
        assert clock.next_wakeup() == clock.now() + timedelta(seconds=5)
        clock.advance(5)
        await clock.wait_for_sleepers(1)  # second crash: now waiting 10 s
        assert sup.status()[0]["last_error"] == "boom 2"
        clock.advance(10)
        await wait_until(lambda: sup.status()[0]["state"] == "running")
    st = sup.status()[0]
    assert st["restarts"] == 2 and st["ok"]
    assert events == ["start1", "stop1", "start2", "stop2", "start3"]
    failures = [r for r in caplog.records if "service crashy failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None
    await sup.stop(1.0)
    assert events[-1] == "stop3"
    assert sup.status()[0]["state"] == "stopped"


async def test_a_critical_service_that_cannot_start_fails_the_start() -> None:
    class Broken(Service):
        async def start(self) -> None:
            raise OSError("address already in use")

    sup = Supervisor(FakeClock())
    with pytest.raises(ServiceStartError, match="control could not start: address already in use"):
        await sup.start([ServiceSpec("control", Broken, critical=True)])


async def test_a_non_critical_start_failure_keeps_the_others_running() -> None:
    class Broken(Service):
        async def start(self) -> None:
            raise OSError("no route")

    clock = FakeClock()
    sup = Supervisor(clock)
    await sup.start([ServiceSpec("ldap", Broken), ServiceSpec("sync", Service)])
    states = {s["name"]: s["state"] for s in sup.status()}
    assert states == {"ldap": "backoff", "sync": "running"}
    await sup.stop(1.0)


async def test_stop_lets_in_flight_work_finish_before_the_deadline() -> None:
    finished = asyncio.Event()

    class Writer(Service):
        async def stop(self) -> None:
            await asyncio.sleep(0)  # the "last transaction"
            finished.set()
            await super().stop()

    sup = Supervisor(FakeClock())
    await sup.start([ServiceSpec("w", Writer)])
    await sup.stop(5.0)
    assert finished.is_set()
    assert sup.status()[0]["state"] == "stopped"


async def test_a_service_ignoring_stop_is_cancelled_at_the_deadline() -> None:
    cancelled = asyncio.Event()

    class Stubborn(Service):
        async def run(self) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def stop(self) -> None:
            await asyncio.Event().wait()  # never returns

    sup = Supervisor(FakeClock())
    await sup.start([ServiceSpec("s", Stubborn)])
    await sup.stop(0.05)
    assert cancelled.is_set()


async def test_apply_restarts_only_services_whose_settings_changed() -> None:
    built: list[str] = []

    def make(tag: str) -> Service:
        built.append(tag)
        return Service()

    sup = Supervisor(FakeClock())
    await sup.start([ServiceSpec("a", lambda: make("a1"), "x"), ServiceSpec("b", lambda: make("b1"), "y")])
    first_a = sup.service("a")
    touched = await sup.apply([ServiceSpec("a", lambda: make("a2"), "x"), ServiceSpec("c", lambda: make("c1"), 1)])
    await wait_until(lambda: all(s["state"] == "running" for s in sup.status()))
    assert touched == ["-b", "+c"]
    assert sup.service("a") is first_a
    assert sorted(sup.names) == ["a", "c"]
    touched = await sup.apply([ServiceSpec("a", lambda: make("a3"), "changed"),
                               ServiceSpec("c", lambda: make("c2"), 1)])
    await wait_until(lambda: sup.service("a") is not None)
    assert touched == ["~a"]
    assert built == ["a1", "b1", "c1", "a3"]
    await sup.stop(1.0)


async def test_a_task_service_whose_body_returns_is_restarted() -> None:
    clock = FakeClock()
    runs: list[int] = []

    async def body() -> None:
        runs.append(1)

    sup = Supervisor(clock, BackoffPolicy(initial_seconds=1))
    await sup.start([ServiceSpec("t", lambda: TaskService("t", body))])
    await clock.wait_for_sleepers(1)
    assert "returned" in sup.status()[0]["last_error"]
    clock.advance(1)
    await clock.wait_for_sleepers(1)
    assert len(runs) == 2
    await sup.stop(1.0)


async def test_health_of_a_running_service_is_reported() -> None:
    class Reporting(Service):
        def health(self) -> Health:
            return Health(False, "AMI link down", {"connected": False})

    sup = Supervisor(FakeClock())
    await sup.start([ServiceSpec("ami", Reporting)])
    (st,) = sup.status()
    assert st["state"] == "running" and not st["ok"]
    assert st["detail"] == "AMI link down" and st["data"] == {"connected": False}
    await sup.stop(1.0)


async def test_a_part_whose_wiring_raises_shows_as_failed_and_the_rest_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from pbxsync.plugin.daemon import wiring

    def broken_part(_ctx: object) -> list[ServiceSpec]:
        raise ImportError("cannot import name 'X' from 'pbxsync.plugin.ldap.server'")

    def fine_part(_ctx: object) -> list[ServiceSpec]:
        return [ServiceSpec("fine", Service)]

    monkeypatch.setattr(wiring, "PARTS", [fine_part, broken_part])
    ctx = wiring.DaemonContext(None, None, FakeClock(), None, lambda _c: None)  # type: ignore[arg-type]
    specs = wiring.build_specs(ctx)
    assert [s.name for s in specs] == ["fine", "broken_part"]
    sup = Supervisor(FakeClock())
    await sup.start(specs)
    states = {s["name"]: (s["state"], s["last_error"]) for s in sup.status()}
    assert states["fine"] == ("running", None)
    assert states["broken_part"][0] == "backoff"
    assert "cannot import name 'X'" in states["broken_part"][1]
    await sup.stop(1.0)
