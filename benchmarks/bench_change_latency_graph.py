"""Change latency over Microsoft Graph: webhooks and batched delta polling vs 15-minute timed passes.

    .venv/bin/python benchmarks/bench_change_latency_graph.py [--users 200] [--changes 100] [--poll-seconds 30]

The Graph simulator (HTTPS, loopback) serves `--users` mailboxes. For each mode, in the same run:
  graph-webhook   subscriptions on every calendar and contacts folder; Graph POSTs to the feed's receiver;
  graph-polling   the feed probes every deltaLink in $batch calls (calendars every --poll-seconds,
                  contacts every --contacts-poll-seconds).
Each folder change the feed reports is debounced as the daemon does (1 s of quiet, at most 3 s) and
followed by the normal incremental sync of that user (SyncEngine, its planner and transaction, into a
fresh SQLite file). `--changes` random changes (meeting added, moved, cancelled; contact added, deleted)
are applied to the simulator a few hundred milliseconds apart; the latency of each is the time from
the change until the store holds it (the rows `pbxsync conferences` and the LDAP phonebook are built
from; the daemon's after-pass steps add milliseconds). Timed passes are off here: with
`interval_minutes = 60` they would only be the safety net.

Targets (issue 13): webhooks p99 <= 10 s; polling p99 <= poll_seconds + 5 s (contacts: their own
interval + 5 s). Baseline: 15-minute timed passes, where a change waits for the next pass (expected p50
7.5 min, p99 14.9 min). Then requests per hour at idle for 1,000 users in each mode, scaled from what
the simulator counted for `--users` (webhook renewals are computed from the renewal schedule).

One row per mode and folder, so other backends' modes (EWS streaming) can be printed beside these.
Runtime: about a minute per mode plus the contacts interval.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from bench_ews_sync import build_org  # a sibling script, not a package

from pbxsync.plugin.daemon.clock import SystemClock
from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig, UserConfig
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.model import Folder, utc_text
from pbxsync.sync.notify.base import FolderChanged
from pbxsync.sync.notify.graph_feed import GraphChangeFeed
from pbxsync.sync.notify.graph_poller import GraphPoller
from pbxsync.sync.notify.graph_polling import MAX_BATCH, PollSchedule
from pbxsync.sync.notify.graph_subscriptions import RENEW_AFTER_FRACTION, REQUESTED_LIFETIME
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, MeetingRecord, Organisation
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.store.db import Store, open_store
from tests.support.ports import port_for_config

QUIET, MAX_DELAY = 1.0, 3.0  # the daemon's debounce: 1 s of quiet, at most 3 s after the first event
SCALE_USERS = 1000
TIMED_INTERVAL_MINUTES = 15
SAFETY_NET_MINUTES = 60


@dataclass
class Change:
    kind: str
    folder: Folder
    made: float
    seen: Callable[[Store], Awaitable[bool]]
    latency: float | None = None


@dataclass
class ModeResult:
    mode: str
    changes: list[Change] = field(default_factory=list)
    target: dict[Folder, float] = field(default_factory=dict)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))] if ordered else math.nan


def exchange_for(sim: GraphSimulator, **extra: object) -> ExchangeConfig:
    return ExchangeConfig(backend="graph", tenant_id=sim.app.tenant_id, client_id=sim.app.client_id,
                          client_secret=Secret(sim.app.client_secret), authority=sim.authority,
                          graph_endpoint=sim.graph_endpoint, ca_file=sim.tls.ca_file, max_connections=4,
                          **extra)  # type: ignore[arg-type]


async def scalar(store: Store, sql: str, *args: object) -> object:
    async with store.conn.execute(sql, args) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


class Daemon:
    """What the daemon does with a feed: debounce per user, then the normal incremental sync."""

    def __init__(self, engine: SyncEngine, users: dict[str, UserConfig]) -> None:
        self.engine = engine
        self.users = users
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.running: set[asyncio.Task[None]] = set()
        self.passes = 0
        self.pass_seconds: list[float] = []

    def notify(self, change: FolderChanged) -> None:
        now = time.monotonic()
        self.first.setdefault(change.mailbox, now)
        self.last[change.mailbox] = now

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            due = [m for m in list(self.first) if now - self.last[m] >= QUIET or now - self.first[m] >= MAX_DELAY]
            for mailbox in due:
                del self.first[mailbox], self.last[mailbox]
                task = asyncio.create_task(self._sync(mailbox))
                self.running.add(task)
                task.add_done_callback(self.running.discard)

    async def _sync(self, mailbox: str) -> None:
        started = time.monotonic()
        await self.engine.sync_user(self.users[mailbox], datetime.now(UTC))
        self.passes += 1
        self.pass_seconds.append(time.monotonic() - started)

    async def settle(self, quiet_for: float = 3.0) -> None:
        """Wait until nothing is pending or running for `quiet_for` seconds."""
        calm_since = time.monotonic()
        while time.monotonic() - calm_since < quiet_for:
            await asyncio.sleep(0.1)
            if self.first or self.running:
                calm_since = time.monotonic()


def make_changes(org: Organisation, mailboxes: list[str], count: int, rng: random.Random) -> list[Callable[[], Change]]:
    """`count` change makers: each applies its change when called and says how to see it in the store."""
    makers: list[Callable[[], Change]] = []
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    used: set[str] = set()

    def pick_meeting(box: str) -> MeetingRecord | None:
        free = [m for m in org.meetings(box) if not m.is_recurring and m.uid not in used]
        return rng.choice(free) if free else None

    for n in range(count):
        box = rng.choice(mailboxes)
        kind = rng.choices(["meeting added", "meeting moved", "meeting cancelled", "contact added",
                            "contact deleted"], [25, 25, 20, 15, 15])[0]
        if kind == "meeting added":
            start = base + timedelta(hours=rng.randrange(1, 200))

            def add(box: str = box, start: datetime = start, uid: str = f"bench-added-{n}") -> Change:
                org.add_meeting(MeetingRecord("", "", uid, "Added", start, start + timedelta(minutes=30),
                                              "Europe/Berlin", location="PBX", organizer_email=box), [box])

                async def seen(store: Store) -> bool:
                    return bool(await scalar(store, "SELECT count(*) FROM occurrences WHERE mailbox = ? AND uid = ?",
                                             box, uid))
                return Change("meeting added", Folder.CALENDAR, time.monotonic(), seen)
            makers.append(add)
        elif kind in ("meeting moved", "meeting cancelled"):
            meeting = pick_meeting(box)
            if meeting is None:
                continue
            used.add(meeting.uid)
            if kind == "meeting moved":
                def move(box: str = box, m: MeetingRecord = meeting) -> Change:
                    start = m.start + timedelta(minutes=15)
                    org.move_meeting(m.uid, start, m.end + timedelta(minutes=15))

                    async def seen(store: Store) -> bool:
                        return await scalar(store, "SELECT min(start_utc) FROM occurrences WHERE mailbox = ? AND "
                                            "uid = ?", box, m.uid) == utc_text(start)
                    return Change("meeting moved", Folder.CALENDAR, time.monotonic(), seen)
                makers.append(move)
            else:
                def cancel(box: str = box, m: MeetingRecord = meeting) -> Change:
                    org.cancel_meeting(m.uid)

                    async def seen(store: Store) -> bool:
                        return not await scalar(store, "SELECT count(*) FROM occurrences WHERE mailbox = ? AND "
                                                "uid = ? AND is_cancelled = 0", box, m.uid)
                    return Change("meeting cancelled", Folder.CALENDAR, time.monotonic(), seen)
                makers.append(cancel)
        elif kind == "contact added":
            def add_contact(box: str = box, n: int = n) -> Change:
                stored = org.add_contact(box, ContactRecord("", "", f"Bench Added {n}"))

                async def seen(store: Store) -> bool:
                    return bool(await scalar(store, "SELECT count(*) FROM contacts WHERE mailbox = ? AND item_id = ?",
                                             box, stored.item_id))
                return Change("contact added", Folder.CONTACTS, time.monotonic(), seen)
            makers.append(add_contact)
        else:
            def delete_contact(box: str = box) -> Change:
                victim = rng.choice(org.contacts(box))
                org.delete_contact(box, victim.item_id)

                async def seen(store: Store) -> bool:
                    return not await scalar(store, "SELECT count(*) FROM contacts WHERE mailbox = ? AND item_id = ?",
                                            box, victim.item_id)
                return Change("contact deleted", Folder.CONTACTS, time.monotonic(), seen)
            makers.append(delete_contact)
    return makers


async def measure(mode: str, org: Organisation, sim: GraphSimulator, exchange: ExchangeConfig, mailboxes: list[str],
                  args: argparse.Namespace, tmp: Path, target: dict[Folder, float]) -> ModeResult:
    """One mode: full sync, the feed up, the changes applied, each one's latency to the store."""
    users = {m: UserConfig(extension=str(1000 + i), email=[m]) for i, m in enumerate(mailboxes)}
    config = Config(database=str(tmp / f"{mode}.db"), exchange=exchange, users=list(users.values()),
                    sync=SyncConfig(interval_minutes=SAFETY_NET_MINUTES, days_back=0, days_ahead=30,
                                    concurrency=args.concurrency))
    store = await open_store(config.database)
    source = GraphSource(exchange, config.sync, page_size=200)
    engine = SyncEngine(store, source, config)
    await engine.sync_all(datetime.now(UTC))
    daemon = Daemon(engine, users)
    feed = GraphChangeFeed(exchange, source, SystemClock())
    folders = [(m, f) for m in mailboxes for f in Folder]
    tasks = [asyncio.create_task(daemon.run()), asyncio.create_task(feed.run(folders, daemon.notify))]
    result = ModeResult(mode, target=target)
    try:
        await asyncio.sleep(1.0)
        await daemon.settle()  # webhooks: the catch-up round after subscribing
        rng = random.Random(args.seed)
        applying = True

        async def watch() -> None:  # from the first change on, so each latency is measured as it happens
            deadline = math.inf
            while applying or (time.monotonic() < deadline and any(c.latency is None for c in result.changes)):
                if not applying and deadline == math.inf:
                    deadline = time.monotonic() + max(target.values()) + 30
                now = time.monotonic()
                for change in [c for c in result.changes if c.latency is None]:
                    if await change.seen(store):
                        change.latency = now - change.made
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        for maker in make_changes(org, mailboxes, args.changes, rng):
            result.changes.append(maker())
            await asyncio.sleep(rng.uniform(0.1, 0.5))
        applying = False
        await watcher
        took = daemon.pass_seconds
        print(f"  {mode}: {feed.health().detail}; {daemon.passes} user passes, median "
              f"{percentile(took, 50):.2f} s, p99 {percentile(took, 99):.2f} s", flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await source.close()
        await store.close()
    return result


async def idle_requests(org: Organisation, sim: GraphSimulator, mailboxes: list[str], args: argparse.Namespace,
                        tmp: Path) -> dict[str, tuple[float, float]]:
    """Requests per hour at idle for SCALE_USERS users: (HTTP requests, requests Graph counts)."""
    scale = SCALE_USERS / len(mailboxes)
    exchange = exchange_for(sim)
    users = [UserConfig(extension=str(1000 + i), email=[m]) for i, m in enumerate(mailboxes)]
    config = Config(database=str(tmp / "idle.db"), exchange=exchange, users=users,
                    sync=SyncConfig(days_back=0, days_ahead=30, concurrency=args.concurrency))
    store = await open_store(config.database)
    source = GraphSource(exchange, config.sync, page_size=200)
    try:
        engine = SyncEngine(store, source, config)
        await engine.sync_all(datetime.now(UTC))
        org.counters.reset()
        await engine.sync_all(datetime.now(UTC))  # a timed pass with nothing changed
        counted = org.counters.by_operation()
        per_pass = sum(n for op, n in counted.items() if op not in ("token", "openid-configuration"))
        probed: dict[Folder, int] = {}  # requests inside the $batch calls of one round over every mailbox
        for folder in Folder:
            org.counters.reset()
            poller = GraphPoller(source, SystemClock(), PollSchedule(1, 1), lambda *_: None)
            await poller.round([(m, folder) for m in mailboxes])
            counted = org.counters.by_operation()
            probed[folder] = sum(n for op, n in counted.items() if op.endswith(".delta"))
    finally:
        await source.close()
        await store.close()
    timed = per_pass * scale * 60 / TIMED_INTERVAL_MINUTES
    net = per_pass * scale * 60 / SAFETY_NET_MINUTES
    renew_every_h = REQUESTED_LIFETIME.total_seconds() * RENEW_AFTER_FRACTION / 3600
    renewals = 2 * SCALE_USERS / renew_every_h
    cal_per_h, con_per_h = 3600 / args.poll_seconds, 3600 / args.idle_contacts_poll_seconds
    # A round's probes scale with the users; its $batch calls are those probes in twenties.
    probes = {f: probed[f] * scale for f in Folder}
    batches = (math.ceil(probes[Folder.CALENDAR] / MAX_BATCH) * cal_per_h
               + math.ceil(probes[Folder.CONTACTS] / MAX_BATCH) * con_per_h)
    inner = probes[Folder.CALENDAR] * cal_per_h + probes[Folder.CONTACTS] * con_per_h
    return {"15-minute timed passes": (timed, timed),
            "graph-webhook (renewals)": (renewals, renewals),
            "graph-webhook + 60-min safety net": (renewals + net, renewals + net),
            f"graph-polling ($batch, {args.poll_seconds:g} s/{args.idle_contacts_poll_seconds:g} s)": (batches, inner),
            "graph-polling + 60-min safety net": (batches + net, inner + net)}


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    org = build_org(args.users, args.contacts, args.occurrences, now)
    mailboxes = [u.email for u in org.users() if u.email.startswith("user")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-graph-latency-"))
    results: list[ModeResult] = []
    with GraphSimulator(org, tls_dir=tmp / "tls") as sim:
        port = port_for_config()  # the notification URL names it before the feed binds it
        webhook = exchange_for(sim, notification_url=f"http://127.0.0.1:{port}/pbxsync/graph/notify",
                               notification_listen=ListenAddress("127.0.0.1", port), poll_seconds=0,
                               contacts_poll_seconds=0)
        results.append(await measure("graph-webhook", org, sim, webhook, mailboxes, args, tmp,
                                     {Folder.CALENDAR: 10.0, Folder.CONTACTS: 10.0}))
        polling = exchange_for(sim, poll_seconds=args.poll_seconds, contacts_poll_seconds=args.contacts_poll_seconds)
        results.append(await measure("graph-polling", org, sim, polling, mailboxes, args, tmp,
                                     {Folder.CALENDAR: args.poll_seconds + 5.0,
                                      Folder.CONTACTS: args.contacts_poll_seconds + 5.0}))
        idle = await idle_requests(org, sim, mailboxes, args, tmp)

    print(f"\n{args.users} users x ({args.contacts} contacts + {args.occurrences} occurrences), {args.changes} "
          "random changes, Graph simulator over HTTPS on loopback; latency = change -> row in the store")
    print(f"{'mode':<16} {'folder':<9} {'changes':>7} {'seen':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
          f"{'target p99':>11}  ok")
    for result in results:
        for folder in Folder:
            picked = [c for c in result.changes if c.folder is folder]
            seen = [c.latency for c in picked if c.latency is not None]
            p99 = percentile(seen, 99)
            ok = len(seen) == len(picked) and p99 <= result.target[folder]
            target = f"<= {result.target[folder]:g} s"
            print(f"{result.mode:<16} {folder.value:<9} {len(picked):7d} {len(seen):5d} {percentile(seen, 50):7.2f} "
                  f"{p99:7.2f} {max(seen, default=math.nan):7.2f} {target:>11}  {'yes' if ok else 'NO'}")
    interval = TIMED_INTERVAL_MINUTES * 60
    print(f"{'baseline':<16} {'both':<9} {'':>7} {'':>5} {interval * 0.5:7.0f} {interval * 0.99:7.0f} "
          f"{interval:7.0f}  (15-minute timed passes: a change waits for the next pass)")
    print(f"\nrequests per hour at idle for {SCALE_USERS} users (scaled from {args.users}; HTTP requests, and in "
          "brackets what Graph counts against throttling: every request inside a $batch)")
    for label, (http, counted) in idle.items():
        print(f"  {label:<42} {http:10,.0f}  ({counted:,.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--occurrences", type=int, default=30)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    parser.add_argument("--contacts-poll-seconds", type=float, default=60.0,
                        help="for the latency run (default 60 to keep it short; the product default is 300)")
    parser.add_argument("--idle-contacts-poll-seconds", type=float, default=300.0,
                        help="for the requests-per-hour figures (the product default)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if not (1 <= args.users <= 2000 and 1 <= args.changes <= 1000 and args.poll_seconds >= 5
            and args.contacts_poll_seconds >= 5):
        parser.error("sizes out of the bounded range (users 1..2000, changes 1..1000, intervals >= 5 s)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
