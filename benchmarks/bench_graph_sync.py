"""Graph sync throughput vs the EWS backend: full and incremental passes of the real sync engine, same data.

    .venv/bin/python benchmarks/bench_graph_sync.py [--users 200] [--contacts 100] [--occurrences 50]

One `Organisation` (the data generator of bench_ews_sync.py) is served at once by the EWS simulator
(HTTP) and the Graph simulator (HTTPS + token endpoint) on 127.0.0.1. For each backend, in the same run,
with the same concurrency, into its own fresh SQLite file:
  full         every contact and every occurrence of the window, from nothing;
  no change    a second pass with nothing changed (Graph: one delta request per folder; EWS: folder sync);
  changes      a pass after 10% of the users got one contact updated and one meeting moved.
Prints wall time, items/s, requests, and the Graph/EWS wall-time ratio per pass (the baseline is EWS).
Runtime is bounded by the sizes; --users 20 gives a quick look.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_ews_sync import PASSWORD, SERVICE, build_org  # a sibling script, not a package

from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig, UserConfig
from pbxsync.sync.engine import PassSummary, SyncEngine
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.store.db import open_store


def config_for(backend: str, ews: EwsSimulator, graph: GraphSimulator, mailboxes: list[str], db: Path,
               concurrency: int) -> Config:
    if backend == "ews":
        exchange = ExchangeConfig(server=ews.ews_url, auth="basic", username=SERVICE, password=Secret(PASSWORD),
                                  max_connections=4)
    else:
        exchange = ExchangeConfig(backend="graph", tenant_id=graph.app.tenant_id, client_id=graph.app.client_id,
                                  client_secret=Secret(graph.app.client_secret), authority=graph.authority,
                                  graph_endpoint=graph.graph_endpoint, ca_file=graph.tls.ca_file, max_connections=4)
    users = [UserConfig(extension=str(1000 + i), email=[m]) for i, m in enumerate(mailboxes)]
    return Config(database=str(db), exchange=exchange, users=users,
                  sync=SyncConfig(days_back=0, days_ahead=30, concurrency=concurrency))


def make_source(config: Config, now: datetime) -> MailboxSource:
    if config.exchange.backend == "graph":
        return GraphSource(config.exchange, config.sync, clock=lambda: now, page_size=200)
    return EwsSource(config.exchange, config.users, "DE")


def items(summary: PassSummary) -> tuple[int, int]:
    """(items written or fetched-and-unchanged counted as written changes, failures)."""
    written = sum((r.added + r.updated + r.deleted) for u in summary.users for r in (u.contacts, u.calendar) if r)
    failed = sum(1 for u in summary.users if not u.ok)
    return written, failed


def mutate(org: Organisation, mailboxes: list[str], now: datetime) -> int:
    changed = 0
    for box in mailboxes[::10]:
        contact = org.contacts(box)[0]
        org.update_contact(box, contact.item_id, company="Changed AG")
        meeting = next(m for m in org.meetings(box) if not m.is_recurring)
        org.update_meeting(meeting.uid, start=meeting.start + timedelta(minutes=30),
                           end=meeting.end + timedelta(minutes=30))
        changed += 2
    return changed


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    org = build_org(args.users, args.contacts, args.occurrences, now)
    mailboxes = [u.email for u in org.users() if u.email != SERVICE]
    tmp = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    with EwsSimulator(org) as ews, GraphSimulator(org, tls_dir=tmp / "tls") as graph:
        configs = {b: config_for(b, ews, graph, mailboxes, tmp / f"{b}.db", args.concurrency) for b in ("ews", "graph")}
        sources = {b: make_source(c, now) for b, c in configs.items()}
        results: dict[str, dict[str, tuple[float, int, int, int]]] = {"ews": {}, "graph": {}}

        async def one_pass(label: str, when: datetime) -> None:
            for backend in ("ews", "graph"):
                org.counters.reset()
                store = await open_store(configs[backend].database)
                started = time.perf_counter()
                try:
                    summary = await SyncEngine(store, sources[backend], configs[backend]).sync_all(when)
                finally:
                    await store.close()
                elapsed = time.perf_counter() - started
                written, failed = items(summary)
                requests = sum(org.counters.by_operation().values())
                results[backend][label] = (elapsed, written, failed, requests)

        await one_pass("full", now)
        await one_pass("no change", now + timedelta(minutes=15))
        mutate(org, mailboxes, now)
        await one_pass("changes", now + timedelta(minutes=30))
        for source in sources.values():
            await source.close()

    print(f"{args.users} users x ({args.contacts} contacts + {args.occurrences} occurrences), "
          f"concurrency {args.concurrency}, loopback; baseline = EWS backend, same data, same run")
    print(f"{'pass':<10} {'backend':<6} {'wall s':>8} {'items':>7} {'items/s':>9} {'requests':>9} {'failed':>6}")
    for label in ("full", "no change", "changes"):
        for backend in ("ews", "graph"):
            elapsed, written, failed, requests = results[backend][label]
            rate = written / elapsed if elapsed else 0.0
            print(f"{label:<10} {backend:<6} {elapsed:8.2f} {written:7d} {rate:9.0f} {requests:9d} {failed:6d}")
        ratio = results["graph"][label][0] / results["ews"][label][0]
        print(f"{label:<10} ratio graph/ews wall time = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--occurrences", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not (1 <= args.users <= 2000 and 0 <= args.contacts <= 2000 and 1 <= args.occurrences <= 1000):
        parser.error("sizes out of the bounded range (users 1..2000, contacts 0..2000, occurrences 1..1000)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
