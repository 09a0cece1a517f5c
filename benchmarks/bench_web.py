"""The web portal's server time per request with 100k contacts and 1,000 users, at 20 concurrent sessions.

Baseline: the same server's static stylesheet (`/static/style.css`: every middleware, no page), measured
in the same run, in the same rounds. The portal runs in this process on 127.0.0.1 (the app the daemon
serves, over a store filled like a big site: 1,000 users with 100 contacts each, 20k occurrences, folder
states, 2,000 bookings with their AUTOCALL attempts over 30 days); 20 clients, each signed in as its own
admin, run in a second process and request every page of the portal's router in turn (waiting 0.3 s on
average between requests, as a person clicking or typing does; `--think 0` is a stress test), plus the
contacts search when the portal has one (`/my/contacts/search.json?q=…`: four digits of a number, part of a name, a
company). Server time is taken by an outermost middleware (Host check, session, handler, rendering),
so the client's own cost does not count. Targets: search p99 <= 20 ms, every page p99 <= 50 ms.

As in the daemon: the numbers' display forms are stored before the clients come (the portal's filler
runs when it starts), and what is alive once the server is up is frozen out of the cyclic GC
(`pbxsync run` does so once its parts are up). The sessions sign in (Argon2, on purpose slow) without
following the redirect, and the measured rounds start once all twenty are in.

    .venv/bin/python benchmarks/bench_web.py [--users 1000] [--contacts-per-user 100] [--rounds 10]
        [--sessions 20] [--think 0.3] [--database PATH (kept: built there when missing, reused after)]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import multiprocessing as mp
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from aiohttp.typedefs import Handler  # noqa: E402

from pbxsync.plugin.daemon.clock import SystemClock  # noqa: E402
from pbxsync.plugin.web import accounts  # noqa: E402
from pbxsync.plugin.web.app import create_app  # noqa: E402
from pbxsync.plugin.web.context import WebContext  # noqa: E402
from pbxsync.plugin.web.number_display import fill_number_forms  # noqa: E402
from pbxsync.sync.config import Config, UserConfig, WebConfig  # noqa: E402
from pbxsync.sync.engine import PassSummary  # noqa: E402
from pbxsync.sync.listen import ListenAddress  # noqa: E402
from pbxsync.sync.model import utc_text  # noqa: E402
from pbxsync.sync.store.db import open_store  # noqa: E402

SESSIONS = 20
SEARCH_TARGET_MS, PAGE_TARGET_MS = 20.0, 50.0
STATIC = "/static/style.css"
SEARCH = "/my/contacts/search.json"
_spec = importlib.util.spec_from_file_location("bench_daemon_rss", ROOT / "benchmarks" / "bench_daemon_rss.py")
assert _spec is not None and _spec.loader is not None
_rss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_rss)  # one way to fill a big database: bench_daemon_rss's


def mailbox(u: int) -> str:
    return f"user{u:04d}@example.com"


def fill_admin_tables(path: Path, users: int, bookings: int, now: datetime) -> None:
    """Folder states for every user; bookings over the last 30 days and next 14 with 3 participants each,
    and AUTOCALL attempts for the past ones (mostly answered, some busy, no answer, failed)."""
    rng = random.Random(11)
    db = sqlite3.connect(path)
    with db:
        folder_rows = []
        for u in range(users):
            for folder in ("contacts", "calendar"):
                ago = utc_text(now - timedelta(minutes=rng.randrange(1, 240)))
                failed = u % 50 == 0 and folder == "contacts"
                folder_rows.append((mailbox(u), folder, ago, None if failed else ago,
                                    "401 Unauthorized" if failed else None, "auth" if failed else None))
        db.executemany("INSERT INTO folder_sync (mailbox, folder, last_attempt, last_success, last_error, error_kind) "
                       "VALUES (?, ?, ?, ?, ?, ?)", folder_rows)
        outcomes = ["answered"] * 7 + ["busy", "no_answer", "failed", "congestion"]
        for b in range(bookings):
            start = now - timedelta(days=30) + timedelta(minutes=30 * b * 44 * 24 // bookings)
            organizer = b % users
            cur = db.execute(
                "INSERT INTO bookings (uid, recurrence_key, subject, location, start_utc, end_utc, timezone, autocall, "
                "state, room, organizer_email, organizer_extension, created_at, updated_at) "
                "VALUES (?, '', ?, 'PBX AUTOCALL', ?, ?, 'Europe/Berlin', 1, 'scheduled', ?, ?, ?, ?, ?)",
                (f"uid-{b}", f"Meeting {b}", utc_text(start), utc_text(start + timedelta(minutes=30)),
                 str(8000 + b % 20), mailbox(organizer), str(1000 + organizer), utc_text(start - timedelta(days=2)),
                 utc_text(start - timedelta(days=1))))
            booking_id = cur.lastrowid
            db.execute("INSERT INTO booking_events (booking_id, at, kind, detail) VALUES (?, ?, 'create', ?)",
                       (booking_id, utc_text(start - timedelta(days=2)), "booked in room 8000"))
            for k in range(3):
                member = (organizer + k) % users
                cur = db.execute(
                    "INSERT INTO booking_participants (booking_id, extension, email, name, role, response, invited, "
                    "copy_state, call, position) VALUES (?, ?, ?, ?, ?, 'accept', 1, 'present', 1, ?)",
                    (booking_id, str(1000 + member), mailbox(member), f"User {member}",
                     "host" if k == 0 else "required", k))
                if start < now:
                    outcome = rng.choice(outcomes)
                    db.execute(
                        "INSERT INTO autocall_attempts (booking_id, participant_id, extension, attempt, channel_id, "
                        "outcome, created_at, finished_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
                        (booking_id, cur.lastrowid, str(1000 + member), f"pbxsync-{booking_id}-{k}", outcome,
                         utc_text(start), utc_text(start + timedelta(seconds=15))))
    db.close()


def bench_config(database: Path, users: int, sessions: int = SESSIONS) -> Config:
    return Config(database=str(database),
                  users=[UserConfig(str(1000 + u), [mailbox(u)], f"User {u}", room=str(5000 + u))
                         for u in range(users)],
                  web=WebConfig(enabled=True, listen=ListenAddress("127.0.0.1", 0),
                                admins=[str(1000 + s) for s in range(sessions)]))


def daemon_status_doc() -> dict[str, Any]:
    services = [{"name": n, "state": "running", "ok": True, "detail": f"{n} fine", "restarts": 0}
                for n in ("control", "sync", "ami", "autocall", "agi", "ldap", "web")]
    return {"version": "bench", "pid": 1, "started": utc_text(datetime.now(UTC)), "config": "bench.toml",
            "database": "bench.db", "ok": True, "store": {"ok": True, "integrity": "ok"}, "services": services}


async def no_sync(extension: str) -> PassSummary:
    return PassSummary(datetime.now(UTC), [])


def pages_of(app: web.Application) -> list[str]:
    """Every GET page of the router without a path parameter, plus one booking's page."""
    paths = []
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path")
        if path and any(r.method == "GET" for r in resource) and path not in ("/", "/signin", "/admin", SEARCH) \
                and not path.startswith("/static"):
            paths.append(path)
    return [*sorted(set(paths)), "/admin/bookings/1", "/admin/users?sort=lag&order=desc", "/admin/outcomes?days=30"]


def timing(times: dict[str, list[float]]) -> Any:
    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            return await handler(request)
        finally:
            resource = request.match_info.route.resource
            key = resource.canonical if resource is not None else request.path  # /users/{extension}/sync
            if request.path in ("/admin/users", "/admin/outcomes", STATIC):
                key = request.path_qs
            times[key].append((time.perf_counter() - start) * 1000)

    return measure


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- the clients, in a process of their own -------------------------------------------------------


async def one_session(base: str, extension: str, password: str, paths: list[str], searches: list[str],
                      rounds: int, think: float, everyone_in: asyncio.Barrier) -> int:
    import aiohttp

    done = 0
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{base}/signin") as response:
            token = re.search(r'name="csrf" value="([^"]+)"', await response.text())
        assert token is not None
        async with session.post(f"{base}/signin", data={"extension": extension, "password": password,
                                                         "csrf": token.group(1), "next": "/my/sync"},
                                allow_redirects=False) as response:
            assert response.status == 303, response.status
        # Twenty Argon2 sign-ins at once keep the CPU busy for a few seconds (on purpose: a password costs
        # what it costs); the pages are measured once every session is in, as an office is after 9:00.
        await everyone_in.wait()
        rng = random.Random(int(extension))
        for r in range(rounds):
            todo = [STATIC, *paths] + [f"{SEARCH}?q={q}" for q in searches[r::rounds][:10]]
            rng.shuffle(todo)
            for path in todo:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think)  # a person reading, or typing the next key
                async with session.get(f"{base}{path}") as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{path}: HTTP {response.status}")
                    done += 1
    return done


def clients(base: str, logins: list[tuple[str, str]], paths: list[str], searches: list[str], rounds: int,
            think: float, out: Any) -> None:
    async def run() -> int:
        everyone_in = asyncio.Barrier(len(logins))
        counts = await asyncio.gather(*(one_session(base, e, p, paths, searches, rounds, think, everyone_in)
                                        for e, p in logins))
        return sum(counts)

    start = time.perf_counter()
    out.put((asyncio.run(run()), time.perf_counter() - start))


# -- the run ----------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> int:
    database = args.database or Path(tempfile.mkdtemp(prefix="pbxsync-bench-web-")) / "pbxsync.db"
    t0 = time.monotonic()
    if not database.exists():
        store = await open_store(database)
        await store.close()
        await asyncio.to_thread(_rss.fill_database, database, args.users, args.contacts_per_user, 20000)
        await asyncio.to_thread(fill_admin_tables, database, args.users, 2000, datetime.now(UTC))
    print(f"database: {args.users} users, {args.users * args.contacts_per_user} contacts, 2,000 bookings, "
          f"{database.stat().st_size / 1e6:.0f} MB, built or opened in {time.monotonic() - t0:.1f} s")

    store = await open_store(database)
    t0 = time.monotonic()
    formatted = await fill_number_forms(store)  # what the portal does when it starts, before the clients come
    if formatted:
        print(f"number display forms stored for {formatted} numbers in {time.monotonic() - t0:.1f} s")
    config = bench_config(database, args.users, args.sessions)
    ctx = WebContext(lambda: config, store, SystemClock(), bytes(32), no_sync, daemon_status=daemon_status_doc)
    logins = [(str(1000 + s), f"bench-password-{s}") for s in range(args.sessions)]
    for extension, password in logins:
        await accounts.set_password(store, extension, password, ctx.clock.now())
    times: dict[str, list[float]] = defaultdict(list)
    app = create_app(ctx)
    app.middlewares.insert(0, timing(times))  # outermost: everything the server does for a request
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gc.freeze()  # as `pbxsync run` does once its parts are up (plugin/daemon/app.py)
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    paths = pages_of(app)
    has_search = any(r.get_info().get("path") == SEARCH for r in app.router.resources())
    rng = random.Random(5)
    searches = ([f"{rng.randrange(1000, 9999)}" for _ in range(100)] + [f"Surname{rng.randrange(args.users)}x"
                for _ in range(50)] + [f"Company+{rng.randrange(97)}" for _ in range(50)]) if has_search else []
    print(f"portal at {base}: {args.sessions} sessions x {args.rounds} rounds of {len(paths)} pages, the stylesheet"
          f"{f', {args.think:.2f} s think time on average' if args.think else ', no think time'}"
          + (" and 10 contact searches" if has_search else " (no contacts search endpoint on this branch)"))
    queue: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=clients, args=(base, logins, paths, searches, args.rounds, args.think,
                                                                   queue))
    proc.start()
    while proc.is_alive() and queue.empty():
        await asyncio.sleep(0.05)
    if queue.empty():
        raise SystemExit("the clients failed (see above)")
    requests, wall = queue.get(timeout=5)
    proc.join(30)
    await runner.cleanup()
    await store.close()
    times.pop("/signin", None)  # signing in: Argon2 on purpose, not a page
    static = times.pop(STATIC)
    base_p50, base_p99 = pct(static, 0.5), pct(static, 0.99)
    print(f"{requests} requests in {wall:.1f} s ({requests / wall:.0f}/s)")
    print(f"baseline {STATIC}: p50 {base_p50:.2f} ms, p99 {base_p99:.2f} ms ({len(static)} requests)")
    worst_page = 0.0
    for key in sorted(times, key=lambda k: -pct(times[k], 0.99)):
        values = times[key]
        p99 = pct(values, 0.99)
        target = SEARCH_TARGET_MS if key == SEARCH else PAGE_TARGET_MS
        if key != SEARCH:
            worst_page = max(worst_page, p99)
        print(f"  {key:<40} p50 {pct(values, 0.5):6.2f} ms  p99 {p99:6.2f} ms  {p99 / base_p99:5.1f}x baseline  "
              f"({len(values)} requests; target <= {target:.0f} ms: {'met' if p99 <= target else 'NOT met'})")
    search_p99 = pct(times[SEARCH], 0.99) if SEARCH in times else None
    print("RESULT: " + (f"contacts search p99 {search_p99:.1f} ms (target <= {SEARCH_TARGET_MS:.0f}), "
                        if search_p99 is not None else "no contacts search endpoint, ")
          + f"slowest page p99 {worst_page:.1f} ms (target <= {PAGE_TARGET_MS:.0f}), static baseline p99 "
          f"{base_p99:.2f} ms")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--contacts-per-user", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=SESSIONS, help="concurrent signed-in sessions")
    parser.add_argument("--database", type=Path, help="reuse this database (built there first when missing; "
                        "the same --users and --contacts-per-user)")
    parser.add_argument("--think", type=float, default=0.3,
                        help="mean seconds a session waits between requests (0: as fast as answered)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
