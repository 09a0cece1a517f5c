"""What one 500-attendee meeting adds to a pass (issue 12: target < 50 ms), measured beside the same pass
without it, in the same run.

    .venv/bin/python benchmarks/bench_large_meeting.py [--users 20] [--meetings 20] [--attendees 500]
                                                       [--pbx-attendees 19] [--rounds 7]

Two EWS simulators, each in its own process (a real server does not share pbxsync's CPU): the same
organisation of `--users` mailboxes with `--meetings` ordinary PBX meetings each, and in the second one
meeting more, organized by the first user, with `--attendees` attendees: `--pbx-attendees` of them PBX
users (their calendars hold a copy each, all synced), the rest outside guests. A pass is what "Sync now"
does: the engine's pass over every user into a fresh SQLite file, the after-sync step (group look-ups and
bookings), and `pbxsync conferences` rendered. Rounds alternate (without, with, without, ...); the medians,
their difference and the spread are printed with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.commands.conferences import render_table
from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig, UserConfig
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import AttendeeRecord, MeetingRecord, Organisation, User
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.store.db import open_store

SERVICE, PASSWORD = "svc-pbx@example.com", "svc-pw"


def mailbox(u: int) -> str:
    return f"user{u:04d}@example.com"


def build_org(users: int, meetings: int, large: tuple[int, int] | None, now: datetime) -> Organisation:
    org = Organisation([User(SERVICE, "svc", PASSWORD, "/o=Example/cn=svc", can_impersonate=True)])
    for u in range(users):
        org.add_user(User(mailbox(u), f"User {u}", "pw", f"/o=Example/cn=user{u}"))
    base = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    for u in range(users):
        for m in range(meetings):
            start = base + timedelta(hours=3 * m, minutes=u)
            org.add_meeting(MeetingRecord(
                "", "", f"uid-{u}-{m}", f"Meeting {m}", start, start + timedelta(minutes=30), "Europe/Berlin",
                location="PBX", organizer_email=mailbox(u), organizer_name=f"User {u}",
                attendees=(AttendeeRecord(mailbox((u + 1) % users), "Peer", "required", "accept"),)))
    if large is not None:
        attendees, internal = large
        staff = [AttendeeRecord(mailbox(u), f"User {u}", "required", "accept") for u in range(1, internal + 1)]
        guests = [AttendeeRecord(f"guest{g:04d}@partner{g % 7}.example", f"Guest {g}", "optional", "noresponse")
                  for g in range(attendees - len(staff))]
        start = base + timedelta(days=1)
        org.add_meeting(MeetingRecord("", "", "town-hall", "Town hall", start, start + timedelta(hours=1),
                                      "Europe/Berlin", location="PBX AUTOCALL", organizer_email=mailbox(0),
                                      organizer_name="User 0", attendees=(*staff, *guests)))
    return org


def serve(conn: Connection, users: int, meetings: int, large: tuple[int, int] | None, now: datetime) -> None:
    with EwsSimulator(build_org(users, meetings, large, now)) as sim:
        conn.send(sim.port)
        conn.recv()  # "stop"


async def passes(port: int, users: int, now: datetime, db: Path,
                 later: int) -> tuple[tuple[float, list[float]], int, int]:
    """Seconds of the first and of each later pass (sync + after-sync + listing); bookings; lines listed."""
    exchange = ExchangeConfig(server=f"http://127.0.0.1:{port}/EWS/Exchange.asmx", auth="basic", username=SERVICE,
                              password=Secret(PASSWORD), max_connections=4)
    people = [UserConfig(extension=str(1000 + u), email=[mailbox(u)], room=str(8000 + u), sync_contacts=False)
              for u in range(users)]
    config = Config(database=str(db), exchange=exchange, users=people,
                    sync=SyncConfig(days_back=0, days_ahead=30, concurrency=8))
    store = await open_store(db)
    source = EwsSource(exchange, people, "DE")
    seconds: list[float] = []
    try:
        for at in (now + timedelta(minutes=m) for m in range(later + 1)):
            started = time.perf_counter()
            summary = await SyncEngine(store, source, config).sync_all(at)
            await update_bookings(store, config, at, groups=source)
            listing = render_table(await list_bookings(store, at), at)
            seconds.append(time.perf_counter() - started)
            assert summary.ok, [u for u in summary.users if not u.ok]
        bookings = len(await list_bookings(store, now))
    finally:
        await source.close()
        await store.close()
    return (seconds[0], seconds[1:]), bookings, len(listing.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--meetings", type=int, default=20)
    parser.add_argument("--attendees", type=int, default=500)
    parser.add_argument("--pbx-attendees", type=int, default=19)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--next", type=int, default=5, help="passes after the first one, per round")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    spawn = multiprocessing.get_context("spawn")
    ports: dict[str, int] = {}
    pipes: list[Connection] = []
    servers = []
    for name, large in (("without", None), ("with", (args.attendees, min(args.pbx_attendees, args.users - 1)))):
        ours, theirs = spawn.Pipe()
        server = spawn.Process(target=serve, args=(theirs, args.users, args.meetings, large, now), daemon=True)
        server.start()
        ports[name] = ours.recv()
        pipes.append(ours)
        servers.append(server)
    times: dict[tuple[str, int], list[float]] = {(n, k): [] for n in ("without", "with") for k in (0, 1)}
    shown: dict[str, tuple[int, int]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                order = ("without", "with") if r % 2 == 0 else ("with", "without")
                for name in order:
                    (first, later), bookings, lines = asyncio.run(passes(ports[name], args.users, now,
                                                                         Path(tmp) / f"{name}-{r}.db", args.next))
                    times[(name, 0)].append(first)
                    times[(name, 1)].extend(later)
                    shown[name] = (bookings, lines)
    finally:
        for pipe in pipes:
            pipe.send("stop")
        for server in servers:
            server.join(timeout=10)
    load = os.getloadavg()
    print(f"{args.users} users x {args.meetings} PBX meetings; the extra meeting: {args.attendees} attendees, "
          f"{min(args.pbx_attendees, args.users - 1)} of them PBX users holding a copy; {args.rounds} rounds "
          f"alternating, {args.next} passes after the first; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for k, label in ((0, "first pass"), (1, "next passes")):
        for name in ("without", "with"):
            bookings, lines = shown[name]
            runs = times[(name, k)]
            print(f"{label} {name:<7} the meeting: median {statistics.median(runs) * 1000:7.1f} ms "
                  f"(spread {(max(runs) - min(runs)) * 1000:.1f} ms; {bookings} bookings, listing {lines} lines)")
        added = (statistics.median(times[("with", k)]) - statistics.median(times[("without", k)])) * 1000
        print(f"{label} the {args.attendees}-attendee meeting adds {added:.1f} ms"
              + (" (target < 50 ms)" if k == 1 else " (it is read, stored and booked once)"))


if __name__ == "__main__":
    main()
