"""Full EWS sync throughput: pbxsync's engine pass vs a bare exchangelib loop, same simulator, same run.

    .venv/bin/python benchmarks/bench_ews_sync.py [--users 60] [--contacts 40] [--occurrences 20] [--rounds 5]
        [--messy-scale 2]

Both sides fetch, per user, every contact (SyncFolderItems), the calendar folder's ids (SyncFolderItems)
and every occurrence in the sync window (FindItem CalendarView + GetItem) from one EWS simulator on
127.0.0.1, with the same concurrency (sync.concurrency mailboxes at once). pbxsync additionally maps,
plans and writes everything into SQLite. The two alternate for --rounds pairs (bare, pbxsync, bare, ...;
each pbxsync pass is a first, full pass into a fresh database); per round items/s and the wall-time ratio
pbxsync/bare (> 1: pbxsync slower) are printed, then the median ratio (target <= 1.25, goal <= 1.10), its
spread (min-max) and the load average before and after.

A second, messy organisation is measured the same way: every user's mailbox is alice's from
tests/data/messy-mailboxes.json (a contact group, a message and a document among the contacts, an item
exchangelib cannot parse, one without an id, sub-folders, Exchange's hidden folders, odd numbers and names),
its contacts repeated --messy-scale times; contacts only. The bare loop walks the same phonebook folders.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

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
from exchangelib.fields import FieldPath
from exchangelib.folders import BaseFolder
from exchangelib.items import ID_ONLY, Contact
from exchangelib.services import SyncFolderItems

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
MESSY = Path(__file__).resolve().parent.parent / "tests" / "data" / "messy-mailboxes.json"
HIDDEN = ("Recipient Cache", "GAL Contacts")  # the data file's hidden folders (IPF.Contact.* classes)


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


def _scaled(contacts: list[dict[str, object]], scale: int, tag: str) -> list[dict[str, object]]:
    out = []
    for k in range(scale):
        for original in contacts:
            c = copy.deepcopy(original)
            for key in ("display_name", "surname", "file_as"):
                if c.get(key):
                    c[key] = f"{c[key]} {tag}-{k}"
            if not c.get("display_name") and c.get("given_name"):
                c["given_name"] = f"{c['given_name']} {tag}-{k}"
            out.append(c)
    return out


def _scaled_folders(folders: list[dict[str, object]], scale: int, tag: str) -> list[dict[str, object]]:
    out = []
    for original in folders:
        f = dict(original)
        f["contacts"] = _scaled(f.get("contacts", []), scale, tag)  # type: ignore[arg-type]
        if f.get("contact_folders"):
            f["contact_folders"] = _scaled_folders(f["contact_folders"], scale, tag)  # type: ignore[arg-type]
        out.append(f)
    return out


def build_messy_org(users: int, scale: int, now: datetime) -> Organisation:
    data = json.loads(MESSY.read_text(encoding="utf-8"))
    alice = data["mailboxes"]["alice@example.com"]
    data["users"] = [u for u in data["users"] if u["email"] == SERVICE]
    data["mailboxes"] = {}
    for u in range(users):
        box = f"user{u:04d}@example.com"
        data["users"].append({"email": box, "name": f"User {u}", "password": "pw"})
        data["mailboxes"][box] = {
            "contacts": _scaled(alice["contacts"], scale, str(u)),
            "contact_folders": _scaled_folders(alice["contact_folders"], scale, str(u))}
    return Organisation.from_dict(data, now=now, source=str(MESSY))


class _SkipUnparseable(SyncFolderItems):  # type: ignore[misc]
    def _elem_to_obj(self, elem: Any) -> tuple[str, Any]:
        try:
            return super()._elem_to_obj(elem)  # type: ignore[no-any-return]
        except Exception:
            return self.CREATE, None


def bare_exchangelib(sim: EwsSimulator, mailboxes: list[str], start: datetime, end: datetime,
                     concurrency: int, messy: bool = False) -> int:
    version = Version(build=Build(15, 1))
    utc = EWSTimeZone("UTC")
    credentials = Credentials(SERVICE, PASSWORD)

    def contacts(folder: BaseFolder) -> int:
        if not messy:
            return sum(1 for _ in folder.sync_items(only_fields=list(CONTACT_FIELDS), max_changes_returned=200))
        # exchangelib's sync_items dies on the item it cannot parse: the least a bare loop must do is skip it
        fields = {FieldPath(field=Contact.get_field_by_fieldname(f)) for f in CONTACT_FIELDS}
        n, state = 0, None
        while True:
            svc = _SkipUnparseable(account=folder.account)
            n += sum(1 for _, item in svc.call(folder=folder, shape=ID_ONLY, additional_fields=fields,
                                               sync_state=state, ignore=None, max_changes_returned=200,
                                               sync_scope=None) if item is not None)
            if svc.includes_last_item_in_range or svc.sync_state == state:
                return n
            state = svc.sync_state

    def one(mailbox: str) -> int:
        config = Configuration(service_endpoint=sim.ews_url, credentials=credentials, version=version,
                               auth_type=BASIC, retry_policy=FailFast(), max_connections=4)
        account = Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION,
                          default_timezone=utc, locale="en_US")
        n = contacts(account.contacts)
        if messy:  # the phonebook's sub-folders, as pbxsync reads them (FindFolder, then one sync each)
            n += sum(contacts(f) for f in account.contacts.walk() if f.name not in HIDDEN)
        else:
            sum(1 for _ in account.calendar.sync_items(only_fields=[], max_changes_returned=200))
            view = account.calendar.view(start=EWSDateTime.from_datetime(start).astimezone(utc),
                                         end=EWSDateTime.from_datetime(end).astimezone(utc))
            n += sum(1 for _ in view.only(*OCCURRENCE_FIELDS))
        account.protocol.close()
        return n

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(one, mailboxes))


async def pbxsync_pass(sim: EwsSimulator, mailboxes: list[str], now: datetime, concurrency: int,
                       db: Path, messy: bool = False) -> tuple[int, int]:
    exchange = ExchangeConfig(server=sim.ews_url, auth="basic", username=SERVICE, password=Secret(PASSWORD),
                              max_connections=4)
    users = [UserConfig(extension=str(1000 + i), email=[m], sync_calendar=not messy) for i, m in enumerate(mailboxes)]
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


def serve(conn: Connection, users: int, contacts: int, occurrences: int, now: datetime, messy_scale: int) -> None:
    """The simulated Exchange runs in its own process, as a real server would: it must not share the
    client's GIL, or pbxsync's own CPU work would be counted twice (once as slower server replies).
    messy_scale > 0: the messy organisation instead of the regular one."""
    org = build_messy_org(users, messy_scale, now) if messy_scale else build_org(users, contacts, occurrences, now)
    with EwsSimulator(org) as sim:
        conn.send(sim.port)
        while (command := conn.recv()) != "stop":
            if command == "reset":
                org.counters.reset()
            conn.send(org.counters.by_operation())


class _RemoteSim:
    def __init__(self, port: int) -> None:
        self.ews_url = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def measure(title: str, args: argparse.Namespace, now: datetime, messy_scale: int = 0) -> float:
    """Alternate bare and pbxsync passes for args.rounds pairs against one simulator; return the median ratio."""
    mailboxes = [f"user{u:04d}@example.com" for u in range(args.users)]
    start, end = now, now + timedelta(days=30)
    spawn = multiprocessing.get_context("spawn")
    ours_end, theirs = spawn.Pipe()
    server = spawn.Process(target=serve, daemon=True, args=(
        theirs, args.users, args.contacts, args.occurrences, now, messy_scale))
    t0 = time.perf_counter()
    server.start()
    sim = _RemoteSim(ours_end.recv())
    print(f"\n== {title}: simulator (own process) ready in {time.perf_counter() - t0:.1f}s; load {_load()}")
    messy = messy_scale > 0
    ratios: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                t0 = time.perf_counter()
                bare_items = bare_exchangelib(sim, mailboxes, start, end, args.concurrency, messy)  # type: ignore[arg-type]
                bare = time.perf_counter() - t0
                ours_end.send("reset")
                ours_end.recv()
                t0 = time.perf_counter()
                stored, failed = asyncio.run(pbxsync_pass(
                    sim, mailboxes, now, args.concurrency, Path(tmp) / f"r{r}.db", messy))  # type: ignore[arg-type]
                ours = time.perf_counter() - t0
                ours_end.send("counters")
                requests = ours_end.recv()
                ratios.append(ours / bare)
                print(f"round {r + 1}: bare {bare_items} items {bare:.2f}s = {bare_items / bare:.0f} items/s | "
                      f"pbxsync {stored} stored {ours:.2f}s = {stored / ours:.0f} items/s, failed users {failed} | "
                      f"ratio {ours / bare:.2f}")
    finally:
        ours_end.send("stop")
        server.join(timeout=10)
    print(f"requests by pbxsync (last round): {requests}")
    median = statistics.median(ratios)
    print(f"{title}: median ratio pbxsync/bare wall time {median:.2f} (target <= 1.25, goal <= 1.10); "
          f"spread {min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} rounds")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--contacts", type=int, default=40)
    parser.add_argument("--occurrences", type=int, default=20)
    parser.add_argument("--messy-scale", type=int, default=2, help="repeat the messy mailbox's items N times")
    parser.add_argument("--rounds", type=int, default=5, help="bare/pbxsync pairs per organisation")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the messy pass's "skipped an item" warnings: counted, not printed
    now = datetime.now(UTC).replace(microsecond=0)
    before = _load()
    print(f"load average (1/5/15 min) before: {before}; {os.cpu_count()} cores")
    regular = measure(f"regular: {args.users} mailboxes x ({args.contacts} contacts + {args.occurrences} "
                      f"occurrences)", args, now)
    messy = measure(f"messy: {args.users} mailboxes x messy-mailboxes.json alice x{args.messy_scale} "
                    f"(contacts only)", args, now, args.messy_scale)
    print(f"\nmedian ratio pbxsync/bare: regular {regular:.2f}, messy {messy:.2f} (target <= 1.25); "
          f"load before {before}, after {_load()}")


if __name__ == "__main__":
    main()
