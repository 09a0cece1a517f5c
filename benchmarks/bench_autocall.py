"""AUTOCALL punctuality and burst speed against the AMI simulator and the real Asterisk 22 (loopback).

1. Start-time skew: BOOKINGS bookings start on the next whole seconds (the store keeps whole seconds);
   skew = the time each booking's first Originate has been written minus its scheduled start.
   Target: p99 <= 250 ms.
2. Burst: one booking with 50 participants starts; time from its start until all 50 Originates have been
   written. Target: <= 1 s without pacing. Baseline, measured in the same run: a bare asyncio socket writing
   50 Originate actions back-to-back to the simulator (no store, no planner, no scheduler).

"Written" = received by the simulator; for the real Asterisk, received by a loopback relay (OriginateTap)
placed between the real AutocallService + AmiClient and Asterisk's AMI, which forwards every byte as is.
For the real Asterisk the benchmark also shows, as extra information, when all 50 callees are in the room
(ConfbridgeList, polled every POLL_S). The Asterisk is a private instance from the chroot built by
scripts/setup-asterisk.sh (tests/support/asterisk_harness.py), with the shipped dialplan and confbridge profiles
and answering Local phones; it is always stopped and removed at the end. Without the chroot the real
Asterisk part is reported as not run (the fix is `make asterisk`) after the simulator figures, exit status 1.

Run: .venv/bin/python benchmarks/bench_autocall.py   (about 20 s)
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, SimUser
from pbxsync.plugin.autocall.planner import PlannerSettings
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.booking.model import ActionKind, BookingAction, BookingDraft, Participant, Role, StoredState
from pbxsync.plugin.booking.store import apply_actions
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import open_store
from tests.support.asterisk_harness import AsteriskInstance, AsteriskNotInstalled, AsteriskStartError, asterisk_root

REPO = Path(__file__).resolve().parents[1]
BOOKINGS = 10
BURST = 50
POLL_S = 0.02
BURST_ROOM = "8999"
# Answering phones for the real Asterisk: every 1XX answers and stays on the line.
BENCH_PHONES = """\
[bench-phones]
exten => _1XX,1,Answer()
 same => n,Wait(600)
 same => n,Hangup()
"""


def draft(n: int, extensions: list[str], start: datetime, room: str) -> BookingDraft:
    people = tuple(Participant(e, f"u{e}@example.com", f"User {e}", Role.HOST if i == 0 else Role.REQUIRED,
                               "accept") for i, e in enumerate(extensions))
    return BookingDraft(f"bench-{n}", "", f"Bench {n}", "PBX AUTOCALL", start, start + timedelta(minutes=30), "UTC",
                        True, StoredState.SCHEDULED, None, room, people[0].email, people[0].extension, True, people)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def next_whole_second(ahead: int = 2) -> datetime:
    return datetime.fromtimestamp(int(time.time()) + ahead, UTC)


async def wait_for_count(originates: Sequence[object], count: int, deadline: float) -> None:
    end = time.monotonic() + deadline
    while len(originates) < count:
        if time.monotonic() > end:
            raise SystemExit(f"only {len(originates)} of {count} Originates arrived")
        await asyncio.sleep(0.001)


class OriginateTap:
    """A loopback relay in front of the real AMI port: notes when each Originate action has arrived from the
    client (the point the simulator timestamps) and forwards every byte unchanged, both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.originates: list[dict[str, str]] = []
        self.originate_times: list[float] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [client_writer, upstream_writer]
        pipes = [asyncio.create_task(self._pipe(upstream_reader, client_writer, watch=False)),
                 asyncio.create_task(self._pipe(client_reader, upstream_writer, watch=True))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            for writer in (client_writer, upstream_writer):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, watch: bool) -> None:
        pending = b""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                arrived = time.time()
                writer.write(data)
                if watch:
                    pending = self._note(pending + data, arrived)
                await writer.drain()

    def _note(self, data: bytes, arrived: float) -> bytes:
        *actions, rest = data.split(b"\r\n\r\n")
        for block in actions:
            headers = dict(line.partition(":")[::2] for line in block.decode(errors="replace").split("\r\n"))
            fields = {k.strip(): v.strip() for k, v in headers.items()}
            if fields.get("Action", "").lower() == "originate":
                self.originates.append(fields)
                self.originate_times.append(arrived)
        return rest


async def run_service(db: Path, drafts: list[BookingDraft], ami_settings: AmiSettings, settings: AutocallSettings,
                      until_done: Callable[[], Awaitable[None]]) -> None:
    """Store the bookings, run the real AutocallService + AmiClient until `until_done` returns."""
    store = await open_store(db)
    await apply_actions(store, [BookingAction(ActionKind.CREATE, None, d, ("bench",)) for d in drafts],
                        datetime.now(UTC))
    ami = AmiClient(ami_settings)
    service = AutocallService(store, ami, settings)
    ami.start()
    await ami.wait_connected(5)
    await service.start()
    try:
        await until_done()
    finally:
        await service.stop()
        await ami.stop()
        await store.close()


def skews_of(drafts: list[BookingDraft], channels: list[str], dialled: list[str], times: list[float]) -> list[float]:
    """Each Originate's write time minus the scheduled start of the booking whose phone it dials."""
    starts = {channel: d.start.timestamp() for channel, d in zip(channels, drafts, strict=True)}
    return [t - starts[channel] for channel, t in zip(dialled, times, strict=True)]


# ---- simulator ------------------------------------------------------------------------------------------

SIM_SERVICE = AutocallSettings(planner=PlannerSettings(retries=0))


def sim_ami(sim: AsteriskSimulator) -> AmiSettings:
    return AmiSettings(port=sim.port, username="pbxsync", secret=Secret("s"))


async def sim_skew(tmp: Path) -> list[float]:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "s")], phones=[Phone(str(1000 + i)) for i in range(200)])
    await sim.start()
    base = next_whole_second()
    drafts = [draft(i, [str(1000 + i)], base + timedelta(seconds=i // 2), f"8{i:03d}") for i in range(BOOKINGS)]
    await run_service(tmp / "skew.db", drafts, sim_ami(sim), SIM_SERVICE,
                      lambda: wait_for_count(sim.originates, BOOKINGS, 30))
    await sim.stop()
    return skews_of(drafts, [f"PJSIP/{1000 + i}" for i in range(BOOKINGS)],
                    [o.get("Channel") for o in sim.originates], sim.originate_times)


async def sim_burst(tmp: Path) -> float:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "s")], phones=[Phone(str(2000 + i)) for i in range(BURST)])
    await sim.start()
    start = next_whole_second()
    await run_service(tmp / "burst.db", [draft(99, [str(2000 + i) for i in range(BURST)], start, BURST_ROOM)],
                      sim_ami(sim), SIM_SERVICE, lambda: wait_for_count(sim.originates, BURST, 30))
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
    await wait_for_count(sim.originates, BURST, 10)
    elapsed = max(sim.originate_times) - t0
    writer.close()
    await sim.stop()
    return elapsed


# ---- real Asterisk ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RealFigures:
    skews: list[float]
    burst_first: float  # scheduled start -> the burst's first Originate written
    burst_written: float  # scheduled start -> 50th Originate written
    burst_joined: float  # scheduled start -> 50 members in ConfbridgeList


def start_real_asterisk() -> AsteriskInstance:
    """A private Asterisk with the shipped dialplan and confbridge profiles and the least-privilege AMI classes."""
    dialplan = REPO / "dialplan"
    pbx = AsteriskInstance(asterisk_root(), extensions=BENCH_PHONES,
                           dialplan_files=[dialplan / "pbxsync-autocall.conf"],
                           confbridge_files=[dialplan / "pbxsync-confbridge.conf"],
                           ami_read="call,system", ami_write="originate,call,reporting")
    try:
        pbx.start()
    except BaseException:
        pbx.cleanup()
        raise
    return pbx


async def room_size(pbx: AsteriskInstance, room: str) -> int:
    async with pbx.ami() as ami:
        try:
            return len(await ami.action_list("ConfbridgeList", Conference=room))
        except AssertionError:  # "No active conferences" until the first callee joins
            return 0


async def real_figures(pbx: AsteriskInstance, tmp: Path) -> RealFigures:
    tap = OriginateTap(pbx.port)
    await tap.start()
    ami_settings = AmiSettings(host=pbx.host, port=tap.port, username=pbx.user, secret=Secret(pbx.secret))
    service = AutocallSettings(dial_template="Local/{extension}@bench-phones", planner=PlannerSettings(retries=0))
    try:
        base = next_whole_second()
        drafts = [draft(i, [str(100 + i)], base + timedelta(seconds=i // 2), f"8{i:03d}") for i in range(BOOKINGS)]
        await run_service(tmp / "real-skew.db", drafts, ami_settings, service,
                          lambda: wait_for_count(tap.originates, BOOKINGS, 30))
        skews = skews_of(drafts, [f"Local/{100 + i}@bench-phones" for i in range(BOOKINGS)],
                         [o.get("Channel", "") for o in tap.originates], tap.originate_times)

        first = len(tap.originates)
        start = next_whole_second()
        joined_at = 0.0

        async def written_then_joined() -> None:
            nonlocal joined_at
            await wait_for_count(tap.originates, first + BURST, 30)
            end = time.monotonic() + 30
            while await room_size(pbx, BURST_ROOM) < BURST:
                if time.monotonic() > end:
                    raise SystemExit(f"not all {BURST} callees joined room {BURST_ROOM} within 30 s")
                await asyncio.sleep(POLL_S)
            joined_at = time.time()

        burst = draft(99, [str(110 + i) for i in range(BURST)], start, BURST_ROOM)
        await run_service(tmp / "real-burst.db", [burst], ami_settings, service, written_then_joined)
        times = tap.originate_times[first:]
        return RealFigures(skews, min(times) - start.timestamp(), max(times) - start.timestamp(),
                           joined_at - start.timestamp())
    finally:
        await tap.stop()


async def real_asterisk(tmp: Path) -> RealFigures | str:
    """The real Asterisk figures, or why they could not be measured."""
    try:
        pbx = await asyncio.to_thread(start_real_asterisk)
    except (AsteriskNotInstalled, AsteriskStartError) as exc:
        return str(exc)
    try:
        return await real_figures(pbx, tmp)
    finally:
        await asyncio.to_thread(pbx.cleanup)


# ---- report ------------------------------------------------------------------------------------------------

def report(label: str, skews: list[float], written: float, base_s: float) -> None:
    p50, p99 = statistics.median(skews) * 1000, pct(skews, 0.99) * 1000
    print(f"[{label}] start-time skew over {len(skews)} bookings: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(target p99 <= 250 ms: {'met' if p99 <= 250 else 'MISSED'})")
    print(f"[{label}] {BURST} Originates written after start: {written * 1000:.1f} ms "
          f"(target <= 1000 ms: {'met' if written <= 1 else 'MISSED'}); "
          f"ratio against the bare-socket baseline = {written / max(base_s, 1e-6):.1f}x")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim_skews = await sim_skew(Path(tmp))
        sim_written = await sim_burst(Path(tmp))
        real = await real_asterisk(Path(tmp))
    base_s = await baseline()
    print(f"baseline (bare socket to the simulator, {BURST} Originates back-to-back): {base_s * 1000:.2f} ms")
    report("simulator", sim_skews, sim_written, base_s)
    if isinstance(real, str):
        raise SystemExit(f"[real Asterisk 22] NOT RUN: {real}")
    report("real Asterisk 22", real.skews, real.burst_written, base_s)
    print(f"[real Asterisk 22] burst: first Originate written {real.burst_first * 1000:.1f} ms after start, "
          f"spread first->last {(real.burst_written - real.burst_first) * 1000:.1f} ms")
    print(f"[real Asterisk 22] all {BURST} callees in ConfbridgeList after start: {real.burst_joined * 1000:.0f} ms "
          f"(polled every {POLL_S * 1000:.0f} ms; information, no target)")


if __name__ == "__main__":
    asyncio.run(main())
