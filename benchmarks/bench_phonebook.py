"""1,000 phones fetching their user's Yealink XML book once, then polling an unchanged book (ETag → 304).

Setup: 1,000 PBX users, each with 100 synced contacts of their own, plus a shared mailbox of 400: every
user's book holds 500 contacts (100.4k contacts in the store). The phonebook server runs in this process
as the daemon runs it (plugin.phonebook.server); a separate process plays the phones with blocking
keep-alive HTTP connections, one request at a time (latency, not throughput), each phone with its own
Basic credentials.

Measures in one run on loopback:
  - baseline: aiohttp serving a static file of the same size (`web.FileResponse`, which also answers
    `If-None-Match` with 304), fetched the same way;
  - pbxsync: the first fetch of each user's book (built and rendered on that request: the cost once per
    change), then the same 1,000 requests with their ETags (304).
Prints p50/p99 latency as the phones see it and the server time (inside the request handler: auth, book,
ETag, render), and the ratios. Targets: first fetch p99 <= 20 ms, 304 p99 <= 1 ms (server time).

Run: python benchmarks/bench_phonebook.py [--users 1000] [--own 100] [--shared 400]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import multiprocessing as mp
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web

from pbxsync.plugin.phonebook import handler
from pbxsync.plugin.phonebook.server import PhonebookServer
from pbxsync.sync.config import Config, LdapConfig, PhonebookConfig, UserConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import open_store
from tests.support.sample_contacts import generate, write_contacts

SHARED = "shared@example.com"
SERVER_TIMES: list[float] = []
_handle = handler.handle


async def timed_handle(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await _handle(request)
    finally:
        SERVER_TIMES.append(time.perf_counter() - started)


handler.handle = timed_handle  # make_app routes to the module's `handle`


def mailbox(user: int) -> str:
    return f"user{user:04d}@example.com"


async def build_db(path: Path, users: int, own: int, shared: int) -> None:
    await (await open_store(path)).close()  # the real migrations
    conn = sqlite3.connect(path)
    try:
        contacts = generate(users * own, seed=17, mailboxes=tuple(mailbox(u) for u in range(users)))
        contacts += [replace(c, mailbox=SHARED, item_id=f"shared-{i}") for i, c in enumerate(generate(shared, seed=18))]
        write_contacts(conn, contacts)
    finally:
        conn.close()


def config(db: Path, users: int) -> Config:
    return Config(database=str(db),
                  users=[UserConfig(extension=str(1000 + u), email=[mailbox(u)], ldap_password=Secret(f"pw{u}"))
                         for u in range(users)],
                  ldap=LdapConfig(shared_mailboxes=[SHARED]),
                  phonebook=PhonebookConfig(listen=ListenAddress("127.0.0.1", 0), dial_prefix="0",
                                            refresh_seconds=0, cache_mb=256))


def phones(port: int, paths: list[tuple[str, dict[str, str]]], out: mp.Queue) -> None:  # type: ignore[type-arg]
    """The phones' side, in its own process: each request once, then again with its ETag."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    firsts, etags, sizes = [], [], []
    for path, headers in paths:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        firsts.append(time.perf_counter() - started)
        assert resp.status == 200, (resp.status, body[:200])
        etags.append(resp.getheader("ETag") or "")
        sizes.append(len(body))
    revalidations = []
    for (path, headers), etag in zip(paths, etags, strict=True):
        started = time.perf_counter()
        conn.request("GET", path, headers={**headers, "If-None-Match": etag})
        resp = conn.getresponse()
        resp.read()
        revalidations.append(time.perf_counter() - started)
        assert resp.status == 304, resp.status
    out.put((firsts, revalidations, sizes))


def measure(port: int, paths: list[tuple[str, dict[str, str]]]) -> tuple[list[float], list[float], list[int]]:
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    proc = mp.Process(target=phones, args=(port, paths, out))
    proc.start()
    result = out.get()
    proc.join()
    return result  # type: ignore[no-any-return]


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--own", type=int, default=100)
    parser.add_argument("--shared", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pbxsync.db"
        started = time.perf_counter()
        await build_db(db, args.users, args.own, args.shared)
        print(f"store: {args.users * args.own + args.shared} contacts in {time.perf_counter() - started:.1f} s")
        server = PhonebookServer(config(db, args.users), db)
        started = time.perf_counter()
        await server.start()
        print(f"snapshot read: {server.snapshot.size} dialable contacts in {time.perf_counter() - started:.1f} s")
        try:
            port = server.addresses[0][1]
            paths = [("/yealink.xml", {"Authorization": "Basic " + base64.b64encode(f"{1000 + u}:pw{u}".encode())
                                       .decode()}) for u in range(args.users)]
            loop = asyncio.get_running_loop()
            firsts, revalidations, sizes = await loop.run_in_executor(None, measure, port, paths)
            server_first, server_304 = SERVER_TIMES[:args.users], SERVER_TIMES[args.users:]
        finally:
            await server.stop()

        # Baseline: aiohttp's static file response of the same size, the same client.
        static = Path(tmp) / "book.xml"
        static.write_bytes(b"x" * int(statistics.median(sizes)))
        app = web.Application()
        app.router.add_get("/book.xml", lambda _request: web.FileResponse(static))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            base_port = runner.addresses[0][1]
            base_first, base_304, _ = await loop.run_in_executor(
                None, measure, base_port, [("/book.xml", {}) for _ in range(args.users)])
        finally:
            await runner.cleanup()

    print(f"book size: median {statistics.median(sizes) / 1024:.0f} KiB ({args.own + args.shared} contacts)")
    print(f"{'as the phones see it':38}{'p50 ms':>9}{'p99 ms':>9}")
    for name, values in (("baseline static file 200", base_first), ("pbxsync first fetch (build+render)", firsts),
                         ("baseline static file 304", base_304), ("pbxsync unchanged book 304", revalidations),
                         ("server time, first fetch", server_first), ("server time, 304", server_304)):
        print(f"{name:38}{p(values, 0.5):9.2f}{p(values, 0.99):9.2f}")
    print(f"ratio first fetch p99: {p(firsts, 0.99) / p(base_first, 0.99):.2f}x the static file; server time p99 "
          f"{p(server_first, 0.99):.2f} ms (target <= 20 ms: {'met' if p(server_first, 0.99) <= 20 else 'MISSED'})")
    print(f"ratio 304 p99: {p(revalidations, 0.99) / p(base_304, 0.99):.2f}x the static file's 304; server time p99 "
          f"{p(server_304, 0.99):.3f} ms (target <= 1 ms: {'met' if p(server_304, 0.99) <= 1 else 'MISSED'})")


if __name__ == "__main__":
    asyncio.run(main())
