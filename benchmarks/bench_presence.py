"""Presence at 09:00: 1,000 users whose meetings all start at 09:00; every update sent within 2 s of it.

The real PresenceService (SQLite store on disk, its one alarm on a FakeClock, the product AmiClient) keeps
1,000 users' Custom:pbxsync-<ext> device state and CustomPresence:<ext> presence state. The clock is moved to
09:00 and the wall time is taken until Asterisk has acknowledged all 2,000 Setvar actions (1,000 device +
1,000 presence states). Target: <= 2 s. Baseline, measured in the same run over the same AMI link: the same
2,000 Setvar actions sent as bare round trips (all at once through AmiClient, no store, no state rule, no
alarm). Run against the AMI simulator, then the real Asterisk 22 (loopback; a private instance from the chroot
built by scripts/setup-asterisk.sh, stopped and removed at the end), where a sample of users is read back with
Getvar. Without the chroot the real-Asterisk part is reported as not run (the fix is `make asterisk`), exit 1.

Run: .venv/bin/python benchmarks/bench_presence.py [--users N] [--rounds R]   (about 15 s)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.presence.asterisk import setvar_actions
from pbxsync.plugin.presence.calendar import PresenceSettings
from pbxsync.plugin.presence.service import PresenceService
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store, open_store
from tests.support.asterisk_harness import AsteriskInstance, AsteriskNotInstalled, AsteriskStartError, asterisk_root
from tests.support.presence import occurrence, presence_config, store_items

NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TARGET_S = 2.0


async def fill(store: Store, users: dict[str, str]) -> None:
    for ext, mailbox in users.items():
        # the 09:00 meeting, an earlier one that is over, and a later one: a realistic few items per user
        await store_items(store, mailbox, occurrence(f"{ext}-a", NINE - timedelta(hours=2), NINE - timedelta(hours=1)),
                          occurrence(f"{ext}-b", NINE, NINE + timedelta(minutes=30)),
                          occurrence(f"{ext}-c", NINE + timedelta(hours=3), NINE + timedelta(hours=4)), now=NINE)


async def at_nine(store: Store, client: AmiClient, users: dict[str, str]) -> tuple[float, PresenceService]:
    """Seconds from the clock reaching 09:00 until every user's BUSY state is acknowledged."""
    clock = FakeClock(NINE - timedelta(minutes=1))
    service = PresenceService(store, client, PresenceSettings.from_config(presence_config(users)), clock)
    await service.start()  # everybody told "free" once (not measured)
    assert len(service.sent) == len(users), f"only {len(service.sent)} of {len(users)} told at start"
    begin = time.perf_counter()
    clock.set(NINE)
    while not all(p.device_state == "BUSY" for p in service.sent.values()) or len(service.sent) < len(users):
        await asyncio.sleep(0.001)
    return time.perf_counter() - begin, service


async def bare_setvars(client: AmiClient, users: dict[str, str], service: PresenceService) -> float:
    """The baseline: the same 2,000 Setvar actions as bare round trips, all at once."""
    headers = [h for ext in users for h in setvar_actions(ext, service.sent[ext])]
    begin = time.perf_counter()
    await asyncio.gather(*(client.action("Setvar", h) for h in headers))
    return time.perf_counter() - begin


async def measure(name: str, settings: AmiSettings, users: dict[str, str], rounds: int) -> list[float]:
    results: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(Path(tmp) / "bench.db")
        await fill(store, users)
        client = AmiClient(settings)
        client.start()
        assert await client.wait_connected(15), f"{name}: no AMI link"
        try:
            for _ in range(rounds):
                took, service = await at_nine(store, client, users)
                base = await bare_setvars(client, users, service)
                await service.stop()
                results.append((took, base))
        finally:
            await client.stop()
            await store.close()
    took = [t for t, _ in results]
    base = [b for _, b in results]
    worst = max(took)
    print(f"{name}: {len(users)} users -> {2 * len(users)} Setvar at 09:00: all acknowledged after "
          f"median {statistics.median(took) * 1000:.0f} ms, worst {worst * 1000:.0f} ms "
          f"(target <= {TARGET_S * 1000:.0f} ms: {'OK' if worst <= TARGET_S else 'MISSED'}); baseline, "
          f"{2 * len(users)} bare Setvar round trips: median {statistics.median(base) * 1000:.0f} ms; ratio "
          f"{statistics.median(took) / statistics.median(base):.2f}x")
    return took


async def simulator(users: dict[str, str], rounds: int) -> list[float]:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "bench", frozenset({"call", "system"}),
                                           frozenset({"originate", "call", "reporting"}))], login_fail_delay=0.0)
    port = await sim.start()
    try:
        return await measure("AMI simulator", AmiSettings(port=port, secret=Secret("bench"), action_timeout=30.0),
                             users, rounds)
    finally:
        await sim.stop()


async def real_asterisk(users: dict[str, str], rounds: int) -> list[float]:
    instance = AsteriskInstance(asterisk_root(), ami_read="call,system", ami_write="originate,call,reporting")
    try:
        instance.start()
        settings = AmiSettings(host=instance.host, port=instance.port, username=instance.user,
                               secret=Secret(instance.secret), action_timeout=30.0)
        took = await measure("real Asterisk 22", settings, users, rounds)
        sample = list(users)[:: max(1, len(users) // 10)]
        async with instance.ami() as ami:
            for ext in sample:
                reply = await ami.action("Getvar", Variable=f"DEVICE_STATE(Custom:pbxsync-{ext})")
                assert reply.get("Value") == "BUSY", (ext, reply)
        print(f"real Asterisk 22: read back {len(sample)} users with Getvar: all BUSY")
        return took
    finally:
        instance.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    users = {str(1000 + i): f"user{i}@example.com" for i in range(args.users)}
    took = asyncio.run(simulator(users, args.rounds))
    try:
        took += asyncio.run(real_asterisk(users, args.rounds))
    except (AsteriskNotInstalled, AsteriskStartError) as exc:
        print(f"real Asterisk 22: not run ({exc})")
        return 1
    return 0 if max(took) <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
