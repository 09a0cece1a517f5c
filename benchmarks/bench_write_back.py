"""Writing the "Join by phone" block for new bookings over the EWS simulator vs bare exchangelib UpdateItem.

    .venv/bin/python benchmarks/bench_write_back.py [--organizers 20] [--meetings 50] [--rounds 3]
        [--concurrency 8]

--organizers x --meetings PBX meetings (default 1,000), each with an HTML body of about 1 kB, in each
organizer's own calendar.

What write-back costs, all of it: with `write_back` on, the calendar sync's GetItem also reads the bodies
(sync.sources.kept_bodies) and the write-back step then writes without reading. So the pbxsync side is timed
as (sync pass with write_back on - the same sync pass with it off) + the write-back pass (the plan, the
rendering, UpdateItem with the change keys the sync read, any GetItem for bodies it did not keep, the
outcomes stored). Both syncs read the same untouched organisation into fresh databases, in alternating
order per round; the bookings step between sync and write-back is untimed (it runs with write-back off too).
The difference of two whole sync passes is noisy where the sync is long (1,000 mailboxes: ~100 s each, a
few seconds apart from run to run on a loaded machine), so its parts are printed too: look at several
rounds, and at the write-back pass alone against the bare calls.

Baseline: the same number of bare exchangelib UpdateItem calls, one `CalendarItem.save(update_fields=
["body"])` per meeting with its current change key (ids and change keys fetched beforehand, untimed), each
organizer's meetings in turn, with the same number of mailboxes at once as pbxsync's sync and write-back
(--concurrency; both sides allow 4 connections per mailbox).

Each round uses two fresh organisations (one per side, both writing into untouched meetings), each served by
its own EWS simulator on 127.0.0.1, baseline first. Prints per round the wall times and the ratio
pbxsync/bare (> 1: pbxsync slower) and, for reference, (sync on + write-back) / (sync off + bare), then the
median ratio (target <= 1.5) and the load average. --meetings 1 is the worst case for pbxsync: nothing to
batch, one UpdateItem per organizer on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from exchangelib import (
    BASIC,
    IMPERSONATION,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Credentials,
    EWSTimeZone,
    FailFast,
    HTMLBody,
    Version,
)
from exchangelib.items import NEVER_OVERWRITE, SEND_TO_ALL_AND_SAVE_COPY

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.writeback.step import write_back
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.ews_writer import EwsWriter
from pbxsync.sync.store.db import open_store
from tests.support.write_back import config_text, ews_exchange

SERVICE, PASSWORD = "svc-pbx@example.com", "svc-pw"  # as tests.support.write_back.ews_exchange
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
BODY = ("<html><head><meta charset=\"utf-8\"></head><body><p>Agenda</p><ul>"
        + "".join(f"<li>Point {n}: something worth discussing at length</li>" for n in range(16))
        + "</ul></body></html>")


def organizers(n: int) -> list[str]:
    return [f"user{i:03d}@example.com" for i in range(n)]


def build_org(n_organizers: int, meetings: int) -> Organisation:
    users = [{"email": m, "name": m, "password": "pw"} for m in organizers(n_organizers)]
    users.append({"email": SERVICE, "name": "PBX", "password": PASSWORD, "can_impersonate": True})
    rows = []
    for i, organizer in enumerate(organizers(n_organizers)):
        for k in range(meetings):
            start = (NOW + timedelta(days=1 + k // 8)).replace(hour=8 + k % 8, minute=0)
            rows.append({"uid": f"m-{i}-{k}", "subject": f"Meeting {k}", "location": "PBX",
                         "organizer": {"email": organizer}, "start": start.strftime("%Y-%m-%dT%H:%M"),
                         "duration_minutes": 30, "body": BODY})
    return Organisation.from_dict({"domain": "example.com", "users": users, "meetings": rows}, now=NOW)


def make_config(sim: EwsSimulator, db: Path, n_organizers: int, concurrency: int) -> Config:
    users = "".join(f'[[users]]\nextension = "{1000 + i}"\nemail = "{m}"\nroom = "{8000 + i}"\nsync_contacts = false\n'
                    for i, m in enumerate(organizers(n_organizers)))
    return parse_config(tomllib.loads(config_text(db, ews_exchange(sim.ews_url), users=users,
                                                  sync=f"days_back = 0\ndays_ahead = 30\nconcurrency = {concurrency}")))


def bare_updates(sim: EwsSimulator, org: Organisation, n_organizers: int, concurrency: int) -> tuple[int, float]:
    """The baseline: one exchangelib UpdateItem per meeting. Returns (calls, seconds)."""
    credentials, version = Credentials(SERVICE, PASSWORD), Version(build=Build(15, 1))

    def account(mailbox: str) -> Account:
        config = Configuration(service_endpoint=sim.ews_url, credentials=credentials, version=version,
                               auth_type=BASIC, retry_policy=FailFast(), max_connections=4)
        return Account(mailbox, config=config, autodiscover=False, access_type=IMPERSONATION,
                       default_timezone=EWSTimeZone("UTC"), locale="en_US")

    accounts = {m: account(m) for m in organizers(n_organizers)}
    keys = {m: [(r.item_id, r.change_key) for r in org.meetings(m)] for m in accounts}  # untimed

    def one(mailbox: str) -> int:
        acc = accounts[mailbox]
        for item_id, change_key in keys[mailbox]:
            item = CalendarItem(account=acc, id=item_id, changekey=change_key, body=HTMLBody(BODY + "<p>x</p>"))
            item.save(update_fields=["body"], conflict_resolution=NEVER_OVERWRITE,
                      send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        return len(keys[mailbox])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        calls = sum(pool.map(one, list(accounts)))
    elapsed = time.perf_counter() - started
    for acc in accounts.values():
        acc.protocol.close()
    return calls, elapsed


async def timed_sync(sim: EwsSimulator, db: Path, n_organizers: int, concurrency: int,
                     write_back_on: bool) -> tuple[Config, EwsSource, float]:
    """One full sync pass into a fresh database, as the daemon's source reads with write_back on or off.
    Returns the config, the (open) source and the seconds."""
    config = make_config(sim, db, n_organizers, concurrency)
    config = replace(config, meetings=replace(config.meetings, write_back=write_back_on))
    source = EwsSource(config.exchange, config.users, "DE", keep_bodies=write_back_on)  # as ews_backend makes it
    store = await open_store(db)
    try:
        started = time.perf_counter()
        await SyncEngine(store, source, config).sync_all(NOW)
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    return config, source, elapsed


async def pbxsync_side(sim: EwsSimulator, tmp: Path, n_organizers: int, concurrency: int,
                       off_first: bool) -> tuple[int, float, float, float]:
    """The sync with write_back off and on (timed), the bookings (untimed), the write-back pass (timed).
    Returns (meetings written, sync off s, sync on s, write-back s)."""
    seconds: dict[bool, float] = {}
    kept: tuple[Config, EwsSource] | None = None
    for on in ((False, True) if off_first else (True, False)):
        config, source, seconds[on] = await timed_sync(sim, tmp / f"{'on' if on else 'off'}.db", n_organizers,
                                                       concurrency, on)
        if on:
            kept = (config, source)
        else:
            await source.close()
    assert kept is not None
    config, source = kept
    store = await open_store(tmp / "on.db")
    try:
        await update_bookings(store, config, NOW)
        started = time.perf_counter()
        summary = await write_back(store, config, EwsWriter(source), NOW)
        elapsed = time.perf_counter() - started
    finally:
        await source.close()
        await store.close()
    assert summary.failed == 0 and summary.conflicts == 0, summary
    return summary.writes, seconds[False], seconds[True], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--organizers", type=int, default=20)
    parser.add_argument("--meetings", type=int, default=50, help="PBX meetings per organizer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="mailboxes at once, both sides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    total = args.organizers * args.meetings
    print(f"{total} new bookings ({args.organizers} organizers x {args.meetings}); load before "
          f"{os.getloadavg()[0]:.2f}")
    ratios = []
    for n in range(args.rounds):
        bare_org, our_org = build_org(args.organizers, args.meetings), build_org(args.organizers, args.meetings)
        with EwsSimulator(bare_org) as sim:
            calls, bare = bare_updates(sim, bare_org, args.organizers, args.concurrency)
        with EwsSimulator(our_org) as sim, tempfile.TemporaryDirectory() as tmp:
            written, sync_off, sync_on, wb = asyncio.run(pbxsync_side(sim, Path(tmp), args.organizers,
                                                                      args.concurrency, off_first=n % 2 == 0))
        assert calls == written == total, (calls, written, total)
        assert all("pbxsync:join-by-phone" in m.body for box in organizers(args.organizers)
                   for m in our_org.meetings(box))
        ours = wb + sync_on - sync_off
        ratios.append(ours / bare)
        print(f"round {n + 1}: bare exchangelib {bare:.2f} s ({calls / bare:.0f} UpdateItem/s); pbxsync "
              f"write-back {wb:.2f} s + bodies in the sync {sync_on - sync_off:+.2f} s (sync {sync_off:.2f} -> "
              f"{sync_on:.2f} s) = {ours:.2f} s, ratio {ours / bare:.2f}x; sync+write vs sync+bare "
              f"{(sync_on + wb) / (sync_off + bare):.2f}x")
    print(f"median ratio pbxsync/bare {statistics.median(ratios):.2f}x (spread {min(ratios):.2f}-"
          f"{max(ratios):.2f}; target <= 1.5); load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
