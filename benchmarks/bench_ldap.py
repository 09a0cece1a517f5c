"""pbxsync's LDAP phonebook against OpenLDAP slapd (Debian, mdb, eq/sub indexes) on the same contacts.

Both servers run as separate processes on 127.0.0.1 and are loaded with the same generated phonebook
(pbxsync from its SQLite store, slapd via slapadd). One client, the raw-socket client in
plugin/ldap/client.py, sends the same phone-like searches (sizeLimit 50, phone attributes) to both, one at
a time, and the script prints searches/s, p50 and p99 per scenario and the pbxsync/slapd ratio:

  name-contains   (|(cn=*mill*)(sn=*mill*))                     (rotating terms, "mill" first)
  name-prefix     (|(cn=mill*)(sn=mill*))
  number-contains (|(telephoneNumber=*4711*)(mobile=*4711*)(homePhone=*4711*))
  new-connection  connect + anonymous bind + name-contains + unbind, per search

Run as root (slapd runs from a temporary config directory):
  python benchmarks/bench_ldap.py                      # 10k and 100k contacts, 3 s per scenario
  python benchmarks/bench_ldap.py --sizes 2000 --seconds 1   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pbxsync.plugin.ldap.build import contact_dn
from pbxsync.plugin.ldap.client import BlockingClient, search_request
from pbxsync.sync.store.db import open_store
from tests.support.ports import port_for_config
from tests.support.sample_contacts import SampleContact, generate, write_contacts

SUFFIX = "dc=example,dc=com"
BASE_DN = f"ou=phonebook,{SUFFIX}"
ATTRS = ("cn", "sn", "givenName", "telephoneNumber", "mobile", "homePhone")
SIZE_LIMIT = 50
NAME_TERMS = ("mill", "schm", "üll", "wag", "ber", "anna", "sen", "mann")
PREFIX_TERMS = ("mill", "sch", "ann", "ber", "kö", "wei", "lu", "ma")

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
sizelimit 500
loglevel 0
database mdb
maxsize 4294967296
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw admin
directory {dir}/db
index objectClass eq
index cn,sn,telephoneNumber,mobile,homePhone eq,sub
access to * by * read
"""


def ldif_value(name: str, value: str) -> str:
    if value.isascii() and value.strip() == value and not value.startswith((":", "<")):
        return f"{name}: {value}\n"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}\n"


def write_ldif(path: Path, contacts: list[SampleContact]) -> None:
    kinds = {"business": "telephoneNumber", "mobile": "mobile", "home": "homePhone"}
    with path.open("w", encoding="utf-8") as out:
        out.write(f"dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
                  "o: Example\ndc: example\n\n")
        out.write(f"dn: {BASE_DN}\nobjectClass: top\nobjectClass: organizationalUnit\nou: phonebook\n\n")
        for c in contacts:
            uid, dn = contact_dn(c.mailbox, c.item_id, BASE_DN)
            out.write(f"dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
                      "objectClass: inetOrgPerson\n")
            out.write(ldif_value("uid", uid) + ldif_value("cn", c.display_name) + ldif_value("displayName",
                      c.display_name) + ldif_value("sn", c.surname or c.display_name))
            if c.given_name:
                out.write(ldif_value("givenName", c.given_name))
            if c.company:
                out.write(ldif_value("o", c.company))
            if c.title:
                out.write(ldif_value("title", c.title))
            for mail in c.emails:
                out.write(ldif_value("mail", mail))
            for kind, raw in c.phones:
                out.write(ldif_value(kinds.get(kind, "telephoneNumber"), raw))
            out.write("\n")


class Slapd:
    def __init__(self, workdir: Path, contacts: list[SampleContact]) -> None:
        self.dir = workdir / "slapd"
        (self.dir / "db").mkdir(parents=True)
        conf = self.dir / "slapd.conf"
        conf.write_text(SLAPD_CONF.format(dir=self.dir, suffix=SUFFIX))
        ldif = self.dir / "data.ldif"
        write_ldif(ldif, contacts)
        subprocess.run(["/usr/sbin/slapadd", "-q", "-f", str(conf), "-l", str(ldif)], check=True,
                       capture_output=True)
        self.port = port_for_config()
        self.proc = subprocess.Popen(["/usr/sbin/slapd", "-d", "0", "-f", str(conf), "-h",
                                      f"ldap://127.0.0.1:{self.port}/"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Pbxsync:
    def __init__(self, workdir: Path, contacts: list[SampleContact]) -> None:
        db = workdir / "pbxsync.db"

        async def create() -> None:
            store = await open_store(db)
            await store.close()

        asyncio.run(create())
        conn = sqlite3.connect(db)
        write_contacts(conn, contacts)
        conn.close()
        # Anonymous searches, as slapd answers them here (the product's default refuses them: without
        # this, pbxsync answered every search with no entries and the ratios compared refusals).
        config = workdir / "pbxsync.toml"
        config.write_text(f'database = "{db}"\n[exchange]\nserver = "http://127.0.0.1:9/EWS/Exchange.asmx"\n'
                          'auth = "basic"\nusername = "svc@example.com"\npassword = "x"\n'
                          "[ldap]\nanonymous = true\n", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, "-m", "pbxsync.plugin.ldap", "--db", str(db), "--config",
                                      str(config), "--listen", "127.0.0.1:0", "--base-dn", BASE_DN,
                                      "--max-connections", "1000"],
                                     stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parent.parent)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once the index is loaded and the port is open
        if not line.startswith("listening"):
            raise RuntimeError(f"pbxsync LDAP server did not start: {line!r}")
        self.port = int(line.split()[2])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not open its port")


def scenario_filters(rng: random.Random, cold: bool = False,
                     contacts: list[SampleContact] | None = None) -> dict[str, Callable[[int], str]]:
    if cold and contacts:  # (almost) every search different: no warm decode/filter caches to lean on
        names = [c.display_name.lower() for c in contacts[:5000]]
        subs = [n[j:j + rng.randint(3, 4)] for n in names for j in (rng.randrange(max(1, len(n) - 3)),)]
        prefixes = [w[:rng.randint(2, 4)] for n in names for w in n.split()]
        rng.shuffle(prefixes)
        numbers = [f"{rng.randint(0, 9999):04d}" for _ in range(20000)]
        return {
            "name-contains": lambda i: "(|(cn=*{0}*)(sn=*{0}*))".format(subs[i % len(subs)]),
            "name-prefix": lambda i: "(|(cn={0}*)(sn={0}*))".format(prefixes[i % len(prefixes)]),
            "number-contains": lambda i: "(|(telephoneNumber=*{0}*)(mobile=*{0}*)(homePhone=*{0}*))".format(
                numbers[i % len(numbers)]),
        }
    digits = ["4711"] + [f"{rng.randint(0, 9999):04d}" for _ in range(63)]
    return {
        "name-contains": lambda i: "(|(cn=*{0}*)(sn=*{0}*))".format(NAME_TERMS[i % len(NAME_TERMS)]),
        "name-prefix": lambda i: "(|(cn={0}*)(sn={0}*))".format(PREFIX_TERMS[i % len(PREFIX_TERMS)]),
        "number-contains": lambda i: "(|(telephoneNumber=*{0}*)(mobile=*{0}*)(homePhone=*{0}*))".format(
            digits[i % len(digits)]),
    }


def run_scenario(port: int, name: str, make_filter: Callable[[int], str], seconds: float,
                 new_connection: bool) -> tuple[list[float], int]:
    latencies: list[float] = []
    entries = 0
    client = None if new_connection else BlockingClient("127.0.0.1", port)
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        request = search_request(2 if new_connection else i + 1, BASE_DN, make_filter(i), ATTRS,
                                 size_limit=SIZE_LIMIT)
        start = time.perf_counter()
        if new_connection:
            conn = BlockingClient("127.0.0.1", port)
            conn.bind()
            conn.send_search(request)
            count, _ = conn.count_until_done()
            conn.close()
        else:
            assert client is not None
            client.send_search(request)
            count, _ = client.count_until_done()
        latencies.append(time.perf_counter() - start)
        entries += count
        i += 1
    if client is not None:
        client.close()
    return latencies, entries


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench(size: int, seconds: float, workdir: Path,
          cold: bool) -> list[tuple[str, float, float, float, float, float, float]]:
    contacts = generate(size, seed=42, mailboxes=("alice@example.com", "bob@example.com"))
    t0 = time.perf_counter()
    slapd = Slapd(workdir, contacts)
    t1 = time.perf_counter()
    ours = Pbxsync(workdir, contacts)
    t2 = time.perf_counter()
    print(f"\n{size} contacts: slapd loaded in {t1 - t0:.1f} s (slapadd + start), "
          f"pbxsync in {t2 - t1:.1f} s (store write + index build + start)", flush=True)
    rows = []
    try:
        filters = scenario_filters(random.Random(7), cold, contacts)
        plan = [(name, f, False) for name, f in filters.items()] + [("new-connection", filters["name-contains"],
                                                                      True)]
        print(f"{'scenario':<16} {'server':<8} {'searches/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'entries/search':>15}")
        for name, make_filter, fresh in plan:
            results = {}
            for label, port in (("slapd", slapd.port), ("pbxsync", ours.port)):
                run_scenario(port, name, make_filter, min(0.3, seconds), fresh)  # warm-up
                latencies, entries = run_scenario(port, name, make_filter, seconds, fresh)
                rate = len(latencies) / sum(latencies)
                results[label] = (rate, statistics.median(latencies) * 1e3, p99(latencies) * 1e3)
                print(f"{name:<16} {label:<8} {rate:>11.0f} {results[label][1]:>8.2f} {results[label][2]:>8.2f} "
                      f"{entries / len(latencies):>15.1f}", flush=True)
            ratio = results["pbxsync"][0] / results["slapd"][0]
            print(f"{name:<16} ratio pbxsync/slapd searches/s = {ratio:.2f}x", flush=True)
            rows.append((name, results["slapd"][0], results["slapd"][2], results["pbxsync"][0],
                         results["pbxsync"][2], ratio, size))
    finally:
        ours.stop()
        slapd.stop()
    return rows  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated contact counts")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per scenario and server")
    parser.add_argument("--cold", action="store_true",
                        help="draw every search term from large pools (thousands of distinct filters) instead of "
                             "rotating a few phone-typical ones")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: slapd is started from a temporary configuration", file=sys.stderr)
        return 2
    if not Path("/usr/sbin/slapd").exists() or (not shutil.which("slapadd") and not Path("/usr/sbin/slapadd").exists()):
        print("Debian slapd is required (apt-get install slapd)", file=sys.stderr)
        return 2
    summary = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        with tempfile.TemporaryDirectory(prefix="bench-ldap-") as tmp:
            summary.extend(bench(size, args.seconds, Path(tmp), args.cold))
    print("\nsummary (baseline: OpenLDAP slapd 2.5, mdb, eq/sub indexes; one sequential raw-socket client; "
          f"{'cold: distinct terms' if args.cold else 'rotating phone-typical terms'})")
    print(f"{'contacts':>9} {'scenario':<16} {'slapd/s':>9} {'slapd p99':>10} {'pbxsync/s':>10} {'pbx p99':>8} "
          f"{'ratio':>6}")
    for name, s_rate, s_p99, p_rate, p_p99, ratio, size in summary:
        print(f"{size:>9} {name:<16} {s_rate:>9.0f} {s_p99:>9.2f}ms {p_rate:>10.0f} {p_p99:>7.2f}ms {ratio:>5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
