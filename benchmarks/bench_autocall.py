"""AUTOCALL punctuality and burst speed against the AMI simulator (loopback).

1. Start-time skew: BOOKINGS bookings start on the next whole seconds (the store keeps whole seconds);
   skew = the simulator's receive time of each booking's first Originate minus its scheduled start.
   Target: p99 <= 250 ms.
2. Burst: one booking with 50 participants starts; time from its start until the simulator has received
   all 50 Originates. Baseline, measured in the same run: a bare asyncio socket writing 50 Originate
   actions back-to-back (no store, no planner, no scheduler). Target: <= 1 s.

Run: /work/venv/bin/python benchmarks/bench_autocall.py   (about 10 s)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.ami.client import AmiClient, AmiSettings
from plugin.ami.simulator import AsteriskSimulator, Phone, SimUser
from plugin.autocall.planner import PlannerSettings
from plugin.autocall.service import AutocallService, AutocallSettings
from plugin.booking.model import ActionKind, BookingAction, BookingDraft, Participant, Role, StoredState
from plugin.booking.store import apply_actions
from sync.secrets import Secret
from sync.store.db import open_store

BOOKINGS = 10
BURST = 50


def draft(n: int, extensions: list[str], start: datetime, room: str) -> BookingDraft:
    people = tuple(Participant(e, f"u{e}@example.com", f"User {e}", Role.HOST if i == 0 else Role.REQUIRED,
                               "accept") for i, e in enumerate(extensions))
    return BookingDraft(f"bench-{n}", "", f"Bench {n}", "PBX AUTOCALL", start, start + timedelta(minutes=30), "UTC",
                        True, StoredState.SCHEDULED, None, room, people[0].email, people[0].extension, True, people)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_for_count(sim: AsteriskSimulator, count: int, deadline: float) -> None:
    end = time.monotonic() + deadline
    while len(sim.originates) < count:
        if time.monotonic() > end:
            raise SystemExit(f"only {len(sim.originates)} of {count} Originates arrived")
        await asyncio.sleep(0.001)


async def run_service(db: Path, drafts: list[BookingDraft], expect: int, sim: AsteriskSimulator) -> None:
    store = await open_store(db)
    await apply_actions(store, [BookingAction(ActionKind.CREATE, None, d, ("bench",)) for d in drafts],
                        datetime.now(UTC))
    ami = AmiClient(AmiSettings(port=sim.port, username="pbxsync", secret=Secret("s")))
    service = AutocallService(store, ami, AutocallSettings(planner=PlannerSettings(retries=0)))
    ami.start()
    await ami.wait_connected(5)
    await service.start()
    try:
        await wait_for_count(sim, expect, 30)
    finally:
        await service.stop()
        await ami.stop()
        await store.close()


async def skew(tmp: Path) -> list[float]:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "s")], phones=[Phone(str(1000 + i)) for i in range(200)])
    await sim.start()
    base = datetime.fromtimestamp(int(time.time()) + 2, UTC)
    drafts = [draft(i, [str(1000 + i)], base + timedelta(seconds=i // 2), f"8{i:03d}") for i in range(BOOKINGS)]
    await run_service(tmp / "skew.db", drafts, BOOKINGS, sim)
    await sim.stop()
    starts = {f"PJSIP/{1000 + i}": drafts[i].start.timestamp() for i in range(BOOKINGS)}
    return [t - starts[o.get("Channel")] for o, t in zip(sim.originates, sim.originate_times, strict=True)]


async def burst(tmp: Path) -> float:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "s")], phones=[Phone(str(2000 + i)) for i in range(BURST)])
    await sim.start()
    start = datetime.fromtimestamp(int(time.time()) + 2, UTC)
    await run_service(tmp / "burst.db", [draft(99, [str(2000 + i) for i in range(BURST)], start, "8999")], BURST, sim)
    await sim.stop()
    return max(sim.originate_times) - start.timestamp()


async def baseline() -> float:
    """50 Originates written back-to-back over a bare socket: the floor any client pays."""
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "s")], phones=[Phone(str(3000 + i)) for i in range(BURST)])
    await sim.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(b"Action: Login\r\nUsername: pbxsync\r\nSecret: s\r\nEvents: on\r\n\r\n")
    await reader.readuntil(b"Authentication accepted\r\n\r\n")
    t0 = time.time()
    for i in range(BURST):
        writer.write(f"Action: Originate\r\nChannel: PJSIP/{3000 + i}\r\nContext: pbxsync-autocall\r\nExten: s\r\n"
                     f"Priority: 1\r\nVariable: PBXSYNC_ROOM=8001\r\nAsync: true\r\nActionID: b{i}\r\n\r\n".encode())
    await writer.drain()
    await wait_for_count(sim, BURST, 10)
    elapsed = max(sim.originate_times) - t0
    writer.close()
    await sim.stop()
    return elapsed


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        skews = await skew(Path(tmp))
        burst_s = await burst(Path(tmp))
    base_s = await baseline()
    p50, p99 = statistics.median(skews) * 1000, pct(skews, 0.99) * 1000
    print(f"start-time skew over {len(skews)} bookings: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(target p99 <= 250 ms: {'met' if p99 <= 250 else 'MISSED'})")
    print(f"{BURST} Originates written after start: {burst_s * 1000:.1f} ms "
          f"(target <= 1000 ms: {'met' if burst_s <= 1 else 'MISSED'})")
    print(f"baseline (bare socket, {BURST} Originates back-to-back): {base_s * 1000:.2f} ms; "
          f"ratio pbxsync/baseline = {burst_s / max(base_s, 1e-6):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
