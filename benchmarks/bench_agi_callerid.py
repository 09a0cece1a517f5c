"""Caller-ID lookups over FastAGI against 100k synced contacts.

Measures, in one run on loopback:
  - baseline: a bare indexed SQLite lookup of the same numbers (sqlite3, E.164 already computed);
  - pbxsync: full FastAGI conversations (connect, agi_* request, SET VARIABLE CALLERID(name) and
    PBXSYNC_CALLERID_SOURCE, close) answered by plugin.agi's server, the caller number arriving in
    national format and normalised per call. The client plays Asterisk from a separate process with
    blocking sockets, sequentially (latency) and then with 16 concurrent callers (throughput).
Prints p50/p99 latency, lookups/s and the ratio against the baseline. Target: FastAGI p99 <= 2 ms.

Run: python benchmarks/bench_agi_callerid.py [--contacts 100000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import socket
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbxsync.plugin.agi.callerid import CallerIdLookup, CallerIdService, normalise
from pbxsync.plugin.agi.server import AgiLimits, FastAgiServer
from pbxsync.sync.config import Config, SyncConfig, UserConfig
from pbxsync.sync.store.db import open_store


def berlin(n: int) -> str:
    return f"30{20000000 + n:08d}"  # national significant number, 030 2xxxxxxx


async def build_db(path: Path, contacts: int) -> None:
    store = await open_store(path)  # runs the real migrations
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (id, mailbox, item_id, change_key, display_name, updated_at) "
            "VALUES (?, ?, ?, 'ck', ?, '2026-01-01T00:00:00+00:00')",
            ((i, f"user{i % 50}@example.com", f"item{i}", f"Contact {i}") for i in range(1, contacts + 1)))
        rows = []
        for i in range(1, contacts + 1):
            raw = f"+49 {berlin(i)[:2]} {berlin(i)[2:6]}-{berlin(i)[6:]}"  # "+49 30 2000-0001"
            e164, digits = f"+49{berlin(i)}", f"49{berlin(i)}"
            rows.append((i, "business", raw, e164, digits))
            rows.append((i, "mobile", f"0170 {i:07d}", f"+49170{i:07d}", f"0170{i:07d}"))
        conn.executemany("INSERT INTO contact_phones (contact_id, kind, raw, e164, digits) VALUES (?,?,?,?,?)", rows)
    conn.execute("ANALYZE")
    conn.close()
    # the lookup side must agree with how these rows were written
    assert normalise("+49 30 2000-0001", "DE") == ("+493020000001", "493020000001"), normalise("+49 30 2000-0001", "DE")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def baseline(path: Path, numbers: list[str], seconds: float) -> list[float]:
    conn = sqlite3.connect(path)
    sql = ("SELECT c.display_name FROM contact_phones p JOIN contacts c ON c.id = p.contact_id "
           "WHERE p.e164 = ? LIMIT 1")
    e164s = [f"+49{n[1:]}" for n in numbers]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    for e in e164s:
        t = time.perf_counter()
        row = conn.execute(sql, (e,)).fetchone()
        latencies.append(time.perf_counter() - t)
        assert row is not None
        if t > deadline:
            break
    conn.close()
    return latencies


def agi_call(port: int, caller: str) -> float:
    request = (f"agi_network: yes\nagi_network_script: callerid\nagi_request: agi://127.0.0.1:{port}/callerid\n"
               f"agi_channel: PJSIP/trunk-00000001\nagi_callerid: {caller}\nagi_calleridname: unknown\n"
               "agi_extension: 101\nagi_dnid: 101\nagi_arg_1: 101\n\n").encode()
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        f = s.makefile("rb")
        names = 0
        while line := f.readline():
            if line.startswith(b"SET VARIABLE CALLERID(name)"):
                names += 1
            s.sendall(b"200 result=1\n")
    elapsed = time.perf_counter() - t
    assert names == 1, caller
    return elapsed


def client(port: int, numbers: list[str], seconds: float, concurrency: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    deadline = time.perf_counter() + seconds
    for n in numbers[:200]:  # warm up
        agi_call(port, n)
    if concurrency == 1:
        latencies = []
        start = time.perf_counter()
        for n in numbers:
            latencies.append(agi_call(port, n))
            if time.perf_counter() > deadline:
                break
        out.put((latencies, time.perf_counter() - start))
        return
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(lambda n: agi_call(port, n) if time.perf_counter() < deadline else -1.0, numbers))
    latencies = [x for x in latencies if x >= 0]
    out.put((latencies, time.perf_counter() - start))


async def run_client(port: int, numbers: list[str], seconds: float, concurrency: int) -> tuple[list[float], float]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=client, args=(port, numbers, seconds, concurrency, out))
    proc.start()
    while out.empty():  # the server runs in this loop: poll without blocking it
        await asyncio.sleep(0.05)
        if not proc.is_alive() and out.empty():
            raise SystemExit(f"client process failed ({proc.exitcode})")
    result = out.get()
    proc.join(10)
    return result  # type: ignore[no-any-return]


def report(label: str, latencies: list[float], wall: float) -> tuple[float, float, float]:
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    rate = len(latencies) / wall
    print(f"{label:<44} n={len(latencies):>6}  p50={p50:7.3f} ms  p99={p99:7.3f} ms  {rate:9.0f} lookups/s")
    return p50, p99, rate


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        t = time.perf_counter()
        await build_db(path, args.contacts)
        print(f"built {args.contacts} contacts ({2 * args.contacts} numbers) in {time.perf_counter() - t:.1f}s")
        numbers = ["0" + berlin(rng.randint(1, args.contacts)) for _ in range(20000)]  # national format

        t = time.perf_counter()
        base = baseline(path, numbers, args.seconds)
        b50, b99, brate = report("baseline: bare indexed SQLite (sqlite3)", base, time.perf_counter() - t)

        store = await open_store(path)
        config = Config(sync=SyncConfig(default_region="DE"),
                        users=[UserConfig(extension="101", email=["user1@example.com"], name="U1")])
        lookup = CallerIdLookup(store, config)
        inproc: list[float] = []
        t = time.perf_counter()
        for n in numbers[:5000]:
            t1 = time.perf_counter()
            found = await lookup.lookup(n, "101")
            inproc.append(time.perf_counter() - t1)
            assert found.source == "contact"
        report("pbxsync lookup only (no FastAGI), in-process", inproc, time.perf_counter() - t)
        lookup.close()
        server = FastAgiServer({"callerid": CallerIdService(CallerIdLookup(store, config))}, "127.0.0.1", 0,
                               AgiLimits(max_connections=1000))
        await server.start()
        try:
            seq, wall = await run_client(server.port, numbers, args.seconds, 1)
            a50, a99, arate = report("pbxsync FastAGI, sequential", seq, wall)
            par, wall = await run_client(server.port, numbers, args.seconds, 16)
            report("pbxsync FastAGI, 16 concurrent callers", par, wall)
        finally:
            await server.close()
            await store.close()
    print(f"ratio FastAGI/baseline: p50 x{a50 / b50:.1f}, p99 x{a99 / b99:.1f}, throughput x{arate / brate:.3f}")
    verdict = "OK" if a99 <= 2.0 else "MISSED"
    print(f"target FastAGI p99 <= 2 ms: {verdict} ({a99:.3f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
