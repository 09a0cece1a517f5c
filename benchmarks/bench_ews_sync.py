"""Full EWS sync throughput: pbxsync's engine pass vs a bare exchangelib loop, same simulator, same run.

    .venv/bin/python benchmarks/bench_ews_sync.py [--users 200] [--contacts 300] [--occurrences 200]

Both sides fetch, per user, every contact (SyncFolderItems), the calendar folder's ids (SyncFolderItems)
and every occurrence in the sync window (FindItem CalendarView + GetItem) from one EWS simulator on
127.0.0.1, with the same concurrency (sync.concurrency mailboxes at once). pbxsync additionally maps,
plans and writes everything into SQLite. Prints items/s for both and the wall-time ratio (target <= 1.25).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from exchangelib import (
    BASIC,
    IMPERSONATION,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    FailFast,
    Version,
)

from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig, UserConfig
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import (
    AttendeeRecord,
    ContactRecord,
    MeetingRecord,
    Organisation,
    Phone,
    Recurrence,
    User,
)
from pbxsync.sync.sources.ews import OCCURRENCE_FIELDS, EwsSource
from pbxsync.sync.sources.ews_contacts import CONTACT_FIELDS
from pbxsync.sync.store.db import open_store

SERVICE, PASSWORD = "svc-pbx@example.com", "svc-pw"


def build_org(users: int, contacts: int, occurrences: int, now: datetime) -> Organisation:
    org = Organisation([User(SERVICE, "svc", PASSWORD, "/o=Example/cn=svc", can_impersonate=True)])
    series_len = 20  # one daily series per user; the rest are single meetings
    for u in range(users):
        box = f"user{u:04d}@example.com"
        org.add_user(User(box, f"User {u}", "pw", f"/o=Example/cn=user{u}"))
        for c in range(contacts):
            org.add_contact(box, ContactRecord(
                "", "", f"Contact {u}-{c}", given_name="Contact", surname=f"{u}-{c}", company="Acme",
                emails=(f"c{c}@acme.example",),
                phones=(Phone("business", f"+49 30 {u:04d}{c:04d}"), Phone("mobile", f"0171 {c:07d}"))))
        base = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
        singles = max(0, occurrences - series_len)
        for m in range(singles):
            start = base + timedelta(hours=3 * m)
            org.add_meeting(MeetingRecord(
                "", "", f"uid-{u}-{m}", f"Meeting {m}", start, start + timedelta(minutes=30), "Europe/Berlin",
                location="PBX", organizer_email=box, organizer_name=f"User {u}",
                attendees=(AttendeeRecord(f"user{(u + 1) % users:04d}@example.com", "Peer", "required",
                                          "accept"),)), [box])
        org.add_meeting(MeetingRecord(
            "", "", f"series-{u}", "Daily", base + timedelta(minutes=30), base + timedelta(minutes=45),
            "W. Europe Standard Time", location="PBX AUTOCALL", organizer_email=box,
            recurrence=Recurrence("daily", count=min(series_len, occurrences))), [box])
    return org


def bare_exchangelib(sim: EwsSimulator, mailboxes: list[str], start: datetime, end: datetime,
                     concurrency: int) -> int:
    version = Version(build=Build(15, 1))
    utc = EWSTimeZone("UTC")
    credentials = Credentials(SERVICE, PASSWORD)

    def one(mailbox: str) -> int:
        config = Configuration(service_endpoint=sim.ews_url, credentials=credentials, version=version,
                               auth_type=BASIC, retry_policy=FailFast(), max_connections=4)
        account = Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION,
                          default_timezone=utc, locale="en_US")
        n = sum(1 for _ in account.contacts.sync_items(only_fields=list(CONTACT_FIELDS), max_changes_returned=200))
        sum(1 for _ in account.calendar.sync_items(only_fields=[], max_changes_returned=200))
        view = account.calendar.view(start=EWSDateTime.from_datetime(start).astimezone(utc),
                                     end=EWSDateTime.from_datetime(end).astimezone(utc))
        n += sum(1 for _ in view.only(*OCCURRENCE_FIELDS))
        account.protocol.close()
        return n

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(one, mailboxes))


async def pbxsync_pass(sim: EwsSimulator, mailboxes: list[str], now: datetime, concurrency: int,
                       db: Path) -> tuple[int, int]:
    exchange = ExchangeConfig(server=sim.ews_url, auth="basic", username=SERVICE, password=Secret(PASSWORD),
                              max_connections=4)
    users = [UserConfig(extension=str(1000 + i), email=[m]) for i, m in enumerate(mailboxes)]
    config = Config(database=str(db), exchange=exchange, users=users,
                    sync=SyncConfig(days_back=0, days_ahead=30, concurrency=concurrency))
    store = await open_store(db)
    source = EwsSource(exchange, users, "DE")
    try:
        summary = await SyncEngine(store, source, config).sync_all(now)
    finally:
        await source.close()
        await store.close()
    added = sum((u.contacts.added if u.contacts else 0) + (u.calendar.added if u.calendar else 0)
                for u in summary.users)
    failed = sum(1 for u in summary.users if (u.contacts and u.contacts.error) or (u.calendar and u.calendar.error))
    return added, failed


def serve(conn: Connection, users: int, contacts: int, occurrences: int, now: datetime) -> None:
    """The simulated Exchange runs in its own process, as a real server would: it must not share the
    client's GIL, or pbxsync's own CPU work would be counted twice (once as slower server replies)."""
    org = build_org(users, contacts, occurrences, now)
    with EwsSimulator(org) as sim:
        conn.send(sim.port)
        while (command := conn.recv()) != "stop":
            if command == "reset":
                org.counters.reset()
            conn.send(org.counters.by_operation())


class _RemoteSim:
    def __init__(self, port: int) -> None:
        self.ews_url = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--occurrences", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    mailboxes = [f"user{u:04d}@example.com" for u in range(args.users)]
    start, end = now, now + timedelta(days=30)
    expected = args.users * (args.contacts + args.occurrences)
    ours_end, theirs = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(theirs, args.users, args.contacts, args.occurrences, now), daemon=True)
    t0 = time.perf_counter()
    server.start()
    sim = _RemoteSim(ours_end.recv())
    print(f"simulator (own process) holds {args.users} mailboxes x ({args.contacts} contacts + "
          f"{args.occurrences} occurrences); ready in {time.perf_counter() - t0:.1f}s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            bare_items = bare_exchangelib(sim, mailboxes, start, end, args.concurrency)  # type: ignore[arg-type]
            bare = time.perf_counter() - t0
            ours_end.send("reset")
            ours_end.recv()
            t0 = time.perf_counter()
            stored, failed = asyncio.run(pbxsync_pass(sim, mailboxes, now, args.concurrency,  # type: ignore[arg-type]
                                                      Path(tmp) / "b.db"))
            ours = time.perf_counter() - t0
            ours_end.send("counters")
            requests = ours_end.recv()
    finally:
        ours_end.send("stop")
        server.join(timeout=10)
    print(f"baseline  bare exchangelib loop: {bare_items} items in {bare:.2f}s = {bare_items / bare:.0f} items/s")
    print(f"pbxsync   engine pass (EwsSource + SQLite): {stored} items stored in {ours:.2f}s = "
          f"{stored / ours:.0f} items/s; failed users: {failed}")
    print(f"requests by pbxsync: {requests}")
    print(f"expected items: {expected}")
    print(f"ratio pbxsync/bare wall time: {ours / bare:.2f} (target <= 1.25)")


if __name__ == "__main__":
    main()
