"""Peak RSS of the agent holding 1,000 users, 100k contacts and 20k occurrences.

Baseline: a bare Python process that loads the same rows (contacts, phones, occurrences) from the same
database into lists, measured in the same run. The agent runs as `pbxsync run` with every part on (sync
timers, bookings, AMI link + AUTOCALL against the Asterisk simulator, FastAGI, LDAP with its in-memory index,
the XML phonebook, the web portal); after it is up, it answers LDAP searches and caller-ID lookups and every
user's phone fetches its Yealink XML book once (by a phone token), so the indexes and caches are warm. Then
1% of the contacts change in the store, LDAP rebuilds its index and the XML phonebook re-reads its snapshot
while the old ones still serve (the daemon's real peak), the searches and fetches run again, and its peak RSS
(VmHWM) is read. Runs without the XML phonebook and without LDAP show how much of it each is. Target: <= 200 MB.
The change appends to names, so every contact keeps its place in display-name order: LDAP's rebuild shares
the columns whose values did not change (plugin.ldap.columns ColumnBuilder); contacts added, or renamed to
another place, shift the entries after them and every column is built again beside the old index.

    .venv/bin/python benchmarks/bench_daemon_rss.py [--users 1000] [--contacts-per-user 100] [--occurrences 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser  # noqa: E402
from pbxsync.plugin.daemon.control_client import daemon_status  # noqa: E402
from pbxsync.sync.config import Config, load_config  # noqa: E402
from pbxsync.sync.listen import ListenAddress  # noqa: E402
from pbxsync.sync.model import utc_text  # noqa: E402
from pbxsync.sync.store.db import open_store  # noqa: E402

TARGET_MB = 200.0
BASELINE = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = [db.execute(q).fetchall() for q in (
    "SELECT * FROM contacts", "SELECT * FROM contact_phones", "SELECT * FROM occurrences")]
print(sum(len(r) for r in rows))
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


def fill_database(path: Path, users: int, per_user: int, occurrences: int) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    stamp = utc_text(now)
    db = sqlite3.connect(path)
    with db:
        contact_rows, phone_rows = [], []
        cid = 0
        for u in range(users):
            mailbox = f"user{u:04d}@example.com"
            for c in range(per_user):
                cid += 1
                given, surname = f"Given{c}", f"Surname{u}x{c}"
                contact_rows.append((cid, mailbox, f"AAMk{u}-{c}", "ck1", f"{given} {surname}", given, surname,
                                     f"Company {c % 97}", "Title", json.dumps([f"c{c}@partner{u}.example"]), stamp))
                number = f"30{rng.randrange(10**7, 10**8)}"
                phone_rows.append((cid, "business", f"+49 {number}", f"+49{number}", f"49{number}"))
                mobile = f"171{rng.randrange(10**6, 10**7)}"
                phone_rows.append((cid, "mobile", f"0{mobile}", f"+49{mobile}", f"0{mobile}"))
        db.executemany("INSERT INTO contacts (id, mailbox, item_id, change_key, display_name, given_name, surname, "
                       "company, title, emails, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", contact_rows)
        db.executemany("INSERT INTO contact_phones (contact_id, kind, raw, e164, digits) VALUES (?,?,?,?,?)",
                       phone_rows)
        occ_rows = []
        for i in range(occurrences):
            u = i % users
            start = now + timedelta(hours=1 + i % 500)
            attendees = json.dumps([{"email": f"user{(u + k) % users:04d}@example.com", "name": f"User {k}",
                                     "kind": "required", "response": "accept"} for k in range(1, 4)])
            occ_rows.append((f"user{u:04d}@example.com", f"OCC{i}", "ck1", f"uid-{i}", utc_text(start), None, "",
                             utc_text(start), utc_text(start + timedelta(minutes=30)), "Europe/Berlin",
                             f"Meeting {i}", "PBX" if i % 10 == 0 else "Room 1", f"user{u:04d}@example.com",
                             f"User {u}", attendees, 0, 0, stamp))
        db.executemany("INSERT INTO occurrences (mailbox, item_id, change_key, uid, occurrence_key, recurrence_id, "
                       "series_item_id, start_utc, end_utc, timezone, subject, location, organizer_email, "
                       "organizer_name, attendees, is_cancelled, is_all_day, updated_at) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", occ_rows)
        # One phone token per user (plugin.phonebook.tokens keeps only the digest), fetched by `warm`.
        db.executemany("INSERT INTO phonebook_tokens (token_sha256, extension, created_at) VALUES (?,?,?)",
                       [(hashlib.sha256(phone_token(u).encode()).hexdigest(), str(1000 + u), stamp)
                        for u in range(users)])
    db.close()


def phone_token(user: int) -> str:
    return f"bench{user:027d}"  # 32 URL-safe characters, as plugin.phonebook.tokens expects


async def _migrate(path: Path) -> None:
    store = await open_store(path)
    await store.close()


def write_config(workdir: Path, users: int, ami_port: int, disabled: set[str]) -> Path:
    lines = [f'database = "{workdir / "pbxsync.db"}"',
             "[exchange]", 'server = "http://127.0.0.1:9/EWS/Exchange.asmx"', 'auth = "basic"',
             'username = "svc@example.com"', 'password = "x"', 'notifications = "off"',
             "[sync]", "interval_minutes = 600",  # timers armed for every user; the first is due at once
             "[pbx]", f"port = {ami_port}", 'secret = "bench-secret"', 'rooms = ["8090", "8091"]',
             "[agi]", 'listen = "127.0.0.1:0"', f"enabled = {str('agi' not in disabled).lower()}",
             "[ldap]", 'listen = "127.0.0.1:0"', "refresh_seconds = 1", "anonymous = true",
             # What everyone sees beside their own 100 (without it, every book would hold all 100k).
             'shared_mailboxes = ["user0000@example.com"]',
             f"enabled = {str('ldap' not in disabled).lower()}",
             "[web]", 'listen = "127.0.0.1:0"', f"enabled = {str('web' not in disabled).lower()}",
             "[control]", f'socket = "{workdir / "control.sock"}"', 'metrics_listen = ""',
             "[log]", 'level = "warning"']
    if "phonebook" not in disabled:
        lines += ["[phonebook]", 'listen = "127.0.0.1:0"', "refresh_seconds = 1"]
    for u in range(users):
        lines += ["[[users]]", f'extension = "{1000 + u}"', f'email = "user{u:04d}@example.com"',
                  f'room = "{5000 + u}"']
    path = workdir / "pbxsync.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def exercise(config_path: Path) -> dict[str, object]:
    """Wait for the agent, warm its indexes, make it rebuild the LDAP index, warm them again."""
    config = load_config(str(config_path))
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(daemon_status, config)
        services = {s["name"]: s for s in (status or {}).get("services", [])}
        if services and all(v["state"] == "running" for v in services.values()) and all(
                (services[part].get("data") or {}).get("contacts") for part in ("ldap", "phonebook")
                if part in services):
            break
        await asyncio.sleep(0.2)
    else:
        raise SystemExit(f"agent did not come up: {status}")
    bound = {name: ListenAddress.parse(str((s.get("data") or {}).get("listen")))
             for name, s in services.items() if name in ("ldap", "agi", "phonebook")}  # the config says port 0
    found = await warm(config, bound)
    # Counters that move when a part re-read the store: LDAP's index builds, the XML phonebook's loads.
    counters = {part: key for part, key in (("ldap", "index_builds"), ("phonebook", "loads")) if part in services}
    if counters:
        # A sync that changes contacts makes each part re-read while its old copy still serves: the
        # daemon then holds two copies for a while, which is its real peak.
        before = {part: (services[part].get("data") or {}).get(key) or 0 for part, key in counters.items()}
        with sqlite3.connect(config.database) as db:
            db.execute("UPDATE contacts SET display_name = display_name || ' (changed)' WHERE id % 100 = 0")
        while time.monotonic() < deadline + 180:
            status = await asyncio.to_thread(daemon_status, config)
            services = {s["name"]: s for s in (status or {}).get("services", [])}
            if all(((services.get(part) or {}).get("data") or {}).get(key, 0) > before[part]
                   for part, key in counters.items()):
                break
            await asyncio.sleep(0.2)
        else:
            raise SystemExit(f"not re-read after the contacts changed: {', '.join(counters)}")
        found += await warm(config, bound)
    if config.ldap.enabled:
        ldap = services.get("ldap") or {}
        index = ldap.get("data") or {}
        return {"ldap_entries": found, "services": len(services),
                "ldap_index": f", LDAP index {index.get('index_mb')} MB, rebuilt once in "
                              f"{index.get('index_build_seconds')} s"}
    return {"ldap_entries": found, "services": len(services), "ldap_index": ""}


async def warm(config: Config, bound: dict[str, ListenAddress]) -> int:
    """LDAP searches, caller-ID lookups and every user's XML book, so the indexes and caches are in use.
    Returns the LDAP entries and XML book entries received."""
    import ldap3  # type: ignore[import-untyped]

    from pbxsync.plugin.demo import _agi_request

    found = 0
    if config.ldap.enabled:
        listen = bound["ldap"]
        conn = ldap3.Connection(ldap3.Server(listen.host, port=listen.port, get_info=ldap3.NONE), auto_bind=True)
        for q in ("(|(cn=*urname1x*)(sn=*urname1x*))", "(telephoneNumber=*4711*)", "(cn=Given1*)"):
            conn.search(config.ldap.base_dn, q, attributes=["cn", "telephoneNumber"], size_limit=500)
            found += len(conn.response or [])
        conn.unbind()
    if config.agi.enabled:
        for n in ("+49 171 1234567", "030 12345678", "0171 7654321"):
            await _agi_request(str(bound["agi"]), "callerid", n, "1000")
    if "phonebook" in bound:
        found += await asyncio.to_thread(fetch_books, bound["phonebook"], len(config.users))
    return found


def fetch_books(listen: ListenAddress, users: int) -> int:
    """Each user's phone fetches its Yealink book once, over one keep-alive connection."""
    conn = http.client.HTTPConnection(listen.host, listen.port, timeout=60)
    entries = 0
    try:
        for u in range(users):
            conn.request("GET", f"/yealink/{phone_token(u)}.xml")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise SystemExit(f"XML phonebook: HTTP {response.status} for user {u}")
            entries += body.count(b"<DirectoryEntry>")
    finally:
        conn.close()
    return entries


async def main_async(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="pbxsync-bench-rss-"))
    db = workdir / "pbxsync.db"
    t0 = time.monotonic()
    await _migrate(db)
    await asyncio.to_thread(fill_database, db, args.users, args.contacts_per_user, args.occurrences)
    print(f"database: {args.users} users, {args.users * args.contacts_per_user} contacts, "
          f"{args.occurrences} occurrences, {db.stat().st_size / 1e6:.0f} MB, built in {time.monotonic() - t0:.1f} s")

    baseline = subprocess.run([sys.executable, "-c", BASELINE, str(db)], capture_output=True, text=True, check=True)
    rows, baseline_kb = (int(x) for x in baseline.stdout.split())
    print(f"baseline (bare Python loading the {rows} rows): peak RSS {baseline_kb / 1024:.1f} MB")

    variants = [set(filter(None, args.disable.split(",")))]
    if not args.disable:
        variants.append({"phonebook"})  # the breakdown: how much of it is the XML phonebook
        variants.append({"ldap"})  # and how much the LDAP phonebook's index
    results = []
    for disabled in variants:
        agent_kb, info = await measure_agent(workdir, args.users, disabled)
        label = "every part on" if not disabled else f"without {', '.join(sorted(disabled))}"
        print(f"agent (pbxsync run, {label}: {info['services']} services, {info['ldap_entries']} LDAP and XML entries "
              f"returned{info['ldap_index']}): peak RSS {agent_kb / 1024:.1f} MB, "
              f"{agent_kb / baseline_kb:.2f}x the baseline")
        results.append(agent_kb)
    full = results[0] / 1024
    print(f"RESULT: agent peak RSS {full:.1f} MB vs baseline {baseline_kb / 1024:.1f} MB = "
          f"{results[0] / baseline_kb:.2f}x; target <= {TARGET_MB:.0f} MB: {'met' if full <= TARGET_MB else 'NOT met'}")
    return 0


async def measure_agent(workdir: Path, users: int, disabled: set[str]) -> tuple[int, dict[str, object]]:
    ami = AsteriskSimulator(users=[SimUser("pbxsync", "bench-secret")])
    await ami.start()
    config_path = write_config(workdir, users, ami.port, disabled)
    log = (workdir / "agent.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "pbxsync.plugin.cli", "--config", str(config_path), "run"],
                            cwd=ROOT, stdout=log, stderr=log)
    try:
        info = await exercise(config_path)
        agent_kb = peak_rss_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()  # measured already; a slow stop (a pass against the unreachable Exchange) is no result
            await asyncio.to_thread(proc.wait)
        await ami.stop()
        log.close()
    return agent_kb, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--contacts-per-user", type=int, default=100)
    parser.add_argument("--occurrences", type=int, default=20000)
    parser.add_argument("--disable", default="", help="parts to leave off, for a breakdown: ldap,phonebook,agi,web")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
