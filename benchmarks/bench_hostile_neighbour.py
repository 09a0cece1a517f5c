"""Hostile neighbours on the LAN: does one client of the LDAP phonebook delay FastAGI or AUTOCALL?

One event loop runs the daemon's parts as `pbxsync run` wires them: the LDAP phonebook (100k contacts,
anonymous on, default limits), the FastAGI server (caller-ID route) and AUTOCALL against the AMI
simulator. Two phases in the same run, each SECONDS long:
  - unloaded: the baseline;
  - attack: HOSTILE clients (threads of one separate process) connect, bind anonymously, send ten
    worst-case searches in one write (an OR of 500 `(o>=...)`, an OR of 40 `cn~=`, the costliest filter
    the cost estimate still lets through, a frequent full scan), read what comes back and reconnect.
In both phases, from separate processes with blocking sockets: a FastAGI client doing caller-ID lookups
one after the other (latency), and a phone-like LDAP client searching `(|(cn=x*)(sn=x*))` with size limit
50 (rate); and MEETINGS AUTOCALL meetings with PARTICIPANTS participants each start on whole seconds
(skew = when the simulator received each Originate minus the meeting's start).

Prints one table: AGI p50/p99, AUTOCALL skew p50/p99, legitimate LDAP searches/s, for both phases, and
the targets (AGI p99 <= 10 ms, skew p99 <= 250 ms under attack; LDAP rate >= 50% of unloaded).
The machine's load matters (other processes take the same cores): the load average is printed too.

Run: .venv/bin/python benchmarks/bench_hostile_neighbour.py [--contacts 100000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbxsync.plugin.agi.service import build_agi_server
from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, SimUser
from pbxsync.plugin.autocall.planner import PlannerSettings
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.booking.model import ActionKind, BookingAction, BookingDraft, Participant, Role, StoredState
from pbxsync.plugin.booking.store import apply_actions
from pbxsync.plugin.daemon.clock import SystemClock
from pbxsync.plugin.ldap.ber import frame_length
from pbxsync.plugin.ldap.client import BlockingClient, bind_request, parse_response, search_request
from pbxsync.plugin.ldap.protocol import SEARCH_DONE
from pbxsync.plugin.ldap.server import LdapServer
from pbxsync.sync.config import AgiConfig, Config, LdapConfig, SyncConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import open_store
from tests.support.sample_contacts import generate, write_contacts

BASE_DN = "ou=pbxsync,dc=example,dc=com"
HOSTILE = 20
MEETINGS = 3
PARTICIPANTS = 20
WITH_NUMBERS = 20_000  # contacts with phone numbers (parsing every number of 100k takes a minute)
WORST = [
    "(|" + "".join(f"(o>=zzz{i:04d})" for i in range(500)) + ")",  # the search (6-7 KB)
    "(|" + "".join(f"(cn~=zz{i:02d})" for i in range(40)) + ")",  # 40 unindexed approximate matches
    "(|" + "".join(f"(cn~=zz{i:02d})" for i in range(10)) + ")",  # just within the cost estimate
    "(|(cn=*a*)(sn=*e*)(o=*n*))",  # frequent fragments: column scans
]
LEGIT = ["(|(cn=mü*)(sn=mü*))", "(|(cn=sch*)(sn=sch*))", "(|(cn=an*)(sn=an*))", "(telephoneNumber=*4711*)"]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ---- clients (separate processes) ---------------------------------------------------------------------

def agi_call(port: int, caller: str) -> float:
    request = (f"agi_network: yes\nagi_network_script: callerid\nagi_request: agi://127.0.0.1:{port}/callerid\n"
               f"agi_channel: PJSIP/trunk-00000001\nagi_callerid: {caller}\nagi_extension: 101\n"
               "agi_arg_1: 101\n\n").encode()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(request)
        f = s.makefile("rb")
        while f.readline():
            s.sendall(b"200 result=1\n")
    return time.perf_counter() - started


def agi_client(port: int, numbers: list[str], seconds: float, out: Any) -> None:
    latencies = []
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        latencies.append(agi_call(port, numbers[n % len(numbers)]))
        n += 1
        time.sleep(0.002)  # calls arrive, they are not a flood
    out.put(latencies)


def ldap_client(port: int, seconds: float, out: Any) -> None:
    client = BlockingClient("127.0.0.1", port, timeout=30)
    client.bind()
    done = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        client.send_search(search_request(client.next_id, BASE_DN, LEGIT[done % len(LEGIT)], ("cn", "telephoneNumber"),
                                          size_limit=50))
        client.next_id += 1
        client.count_until_done()
        done += 1
    client.close()
    out.put(done / (time.perf_counter() - started))


def hostile_client(port: int, seconds: float, out: Any) -> None:
    stop = time.perf_counter() + seconds
    codes: dict[int, int] = {}
    lock = threading.Lock()
    ten = b"".join(search_request(n + 2, BASE_DN, WORST[n % len(WORST)], ("cn",)) for n in range(10))

    def attack() -> None:
        while time.perf_counter() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=max(0.1, stop - time.perf_counter())) as s:
                    s.sendall(bind_request(1) + ten)
                    buffer, answered = bytearray(), 0
                    while answered < 10 and time.perf_counter() < stop:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                        while (size := frame_length(buffer, 1 << 30)) is not None:
                            response = parse_response(bytes(buffer[:size]))
                            del buffer[:size]
                            if response.tag == SEARCH_DONE:
                                answered += 1
                                with lock:
                                    codes[response.code] = codes.get(response.code, 0) + 1
            except OSError:
                pass  # refused (per-address cap) or timed out: reconnect

    threads = [threading.Thread(target=attack) for _ in range(HOSTILE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(codes)


# ---- the daemon's parts (this process) ----------------------------------------------------------------

async def build_store(path: Path, contacts: int) -> list[str]:
    await (await open_store(path)).close()
    made = generate(contacts, seed=14, mailboxes=("alice@example.com", "bob@example.com"))
    conn = sqlite3.connect(path)
    try:
        write_contacts(conn, made[:WITH_NUMBERS] + [dataclasses.replace(c, phones=()) for c in made[WITH_NUMBERS:]])
    finally:
        conn.close()
    return [raw for c in made[:2000] for _, raw in c.phones[:1]]


async def book(store: Any, starts: list[datetime], tag: str, first_extension: int) -> None:
    actions = []
    for k, start in enumerate(starts):
        people = tuple(Participant(str(first_extension + n), f"u{n}@example.com", f"User {n}",
                                   Role.HOST if n == 0 else Role.REQUIRED, "organizer" if n == 0 else "accept")
                       for n in range(PARTICIPANTS))
        actions.append(BookingAction(ActionKind.CREATE, None, BookingDraft(
            f"bench-{tag}-{k}", "", f"Bench {tag} {k}", "PBX AUTOCALL", start, start + timedelta(minutes=30), "UTC",
            True, StoredState.SCHEDULED, None, f"8{first_extension // 100}{k:02d}", people[0].email,
            people[0].extension, True, people),
            ("bench",)))
    await apply_actions(store, actions, datetime.now(UTC))


class Stamped(list[Any]):
    """The simulator's list of received Originates, stamped with the wall clock on arrival."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def append(self, item: Any) -> None:
        self.at.append(time.time())
        super().append(item)


async def run_processes(*targets: tuple[Any, tuple[Any, ...]]) -> list[Any]:
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue() for _ in targets]
    procs = [ctx.Process(target=fn, args=(*args, q)) for (fn, args), q in zip(targets, queues, strict=True)]
    for p in procs:
        p.start()
    results = [await asyncio.to_thread(q.get) for q in queues]
    for p in procs:
        await asyncio.to_thread(p.join)
    return results


async def loop_gaps(until: float) -> list[float]:
    """How long the loop takes to come back to a task that only yields (its responsiveness)."""
    gaps = []
    last = time.perf_counter()
    while last < until:
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last - 0.001)
        last = now
    return gaps


async def phase(name: str, seconds: float, ldap: LdapServer, agi_port: int, store: Any, sim: AsteriskSimulator,
                autocall: AutocallService, numbers: list[str]) -> dict[str, Any]:
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    starts = [first + timedelta(seconds=2 * k) for k in range(MEETINGS)]
    extensions = 100 if name == "unloaded" else 200  # the first phase's callees are still in their rooms
    await book(store, starts, name, extensions)
    await autocall.reconcile()
    ldap_port = ldap.addresses[0][1]
    seen = len(sim.originates)
    targets: list[tuple[Any, tuple[Any, ...]]] = [(agi_client, (agi_port, numbers, seconds)),
                                                  (ldap_client, (ldap_port, seconds))]
    if name == "attack":
        targets.append((hostile_client, (ldap_port, seconds)))
    monitor = asyncio.create_task(loop_gaps(time.perf_counter() + seconds))
    results = await run_processes(*targets)
    gaps = await monitor
    deadline = time.monotonic() + 30
    while len(sim.originates) - seen < MEETINGS * PARTICIPANTS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stamped: Stamped = sim.originates  # type: ignore[assignment]
    skews = []
    for msg, at in zip(stamped[seen:], stamped.at[seen:], strict=True):
        room = msg.get_all("Variable")[0].split("=", 1)[1]  # PBXSYNC_ROOM=8<phase><k>
        start = starts[int(room[-2:])]
        skews.append(at - start.timestamp())
    latencies = results[0]
    out = {"agi_p50": percentile(latencies, 50) * 1e3, "agi_p99": percentile(latencies, 99) * 1e3,
           "agi_n": len(latencies), "skew_p50": percentile(skews, 50) * 1e3, "skew_p99": percentile(skews, 99) * 1e3,
           "calls": len(skews), "ldap_rate": results[1], "gap_p99": percentile(gaps, 99) * 1e3,
           "gap_max": max(gaps) * 1e3}
    if name == "attack":
        out["hostile"] = results[2]
    return out


async def main(contacts: int, seconds: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pbxsync.db"
        t0 = time.perf_counter()
        numbers = await build_store(path, contacts)
        config = Config(database=str(path), sync=SyncConfig(default_region="DE"),
                        ldap=LdapConfig(listen=ListenAddress("127.0.0.1", 0), base_dn=BASE_DN, anonymous=True,
                                        refresh_seconds=0),
                        agi=AgiConfig(listen=ListenAddress("127.0.0.1", 0)))
        store = await open_store(path)
        clock = SystemClock()
        ldap = LdapServer(config, path)
        await ldap.start()
        agi = build_agi_server(config, store, clock)
        await agi.start()
        sim = AsteriskSimulator(phones=[Phone(str(base + n)) for base in (100, 200) for n in range(PARTICIPANTS)],
                                time_scale=1.0,
                                users=[SimUser("pbxsync", "s3cret", frozenset({"call", "system"}),
                                               frozenset({"originate", "call", "reporting"}))])
        sim.originates = Stamped()
        await sim.start()
        ami = AmiClient(AmiSettings(port=sim.port, username="pbxsync", secret=Secret("s3cret"), action_timeout=10.0))
        ami.start()
        await ami.wait_connected(5.0)
        autocall = AutocallService(store, ami, AutocallSettings(planner=PlannerSettings(
            retries=0, retry_delay=timedelta(0), grace=timedelta(minutes=10), ring_timeout=timedelta(seconds=5))),
            clock=clock)
        await autocall.start()
        print(f"{contacts} contacts loaded in {time.perf_counter() - t0:.1f} s; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        try:
            unloaded = await phase("unloaded", seconds, ldap, agi.port, store, sim, autocall, numbers)
            attack = await phase("attack", seconds, ldap, agi.port, store, sim, autocall, numbers)
        finally:
            await autocall.stop()
            await ami.stop()
            await sim.stop()
            await agi.close()
            await ldap.stop()
            await store.close()
    ratio = attack["ldap_rate"] / unloaded["ldap_rate"]
    print(f"\n{'':28} {'unloaded':>10} {'attack':>10}   target (attack)")
    print(f"{'FastAGI caller-ID p50 (ms)':28} {unloaded['agi_p50']:10.2f} {attack['agi_p50']:10.2f}")
    print(f"{'FastAGI caller-ID p99 (ms)':28} {unloaded['agi_p99']:10.2f} {attack['agi_p99']:10.2f}   <= 10"
          f"  ({unloaded['agi_n']} / {attack['agi_n']} lookups)")
    print(f"{'AUTOCALL skew p50 (ms)':28} {unloaded['skew_p50']:10.1f} {attack['skew_p50']:10.1f}")
    print(f"{'AUTOCALL skew p99 (ms)':28} {unloaded['skew_p99']:10.1f} {attack['skew_p99']:10.1f}   <= 250"
          f"  ({unloaded['calls']} / {attack['calls']} calls)")
    print(f"{'legit LDAP searches/s':28} {unloaded['ldap_rate']:10.0f} {attack['ldap_rate']:10.0f}   >= 50% "
          f"(is {ratio:.0%})")
    print(f"{'loop come-back p99 (ms)':28} {unloaded['gap_p99']:10.2f} {attack['gap_p99']:10.2f}   "
          f"(max {unloaded['gap_max']:.1f} / {attack['gap_max']:.1f})")
    print(f"hostile searches answered, by result code: {attack['hostile']}")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    ok = attack["agi_p99"] <= 10 and attack["skew_p99"] <= 250 and ratio >= 0.5
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.contacts, args.seconds)))
