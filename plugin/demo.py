"""`pbxsync demo`: the real agent against the simulated Exchange and Asterisk, narrated as a timeline.

It starts the EWS simulator (mailboxes with contacts and meetings, one `PBX AUTOCALL` meeting starting
seconds from now) and the Asterisk simulator (scripted phones: who answers, who is busy), writes a temp
config and database, runs the daemon's services in this process, and prints what happens: users and
contacts synced, bookings made and rejected (with reasons), every AUTOCALL call and its outcome, then the
parts of plugin.demo_more (presence while that meeting runs, write-back, notices, XML phonebook), an LDAP
phonebook search and a caller-ID lookup over FastAGI. Each step is checked; the exit code is 0 only when
every step did what it should.

Over 400 lines on purpose: one narrated timeline, step after step; split, it would read out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, Any

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, SimUser, load_phones
from pbxsync.plugin.ami.wire import AmiMessage
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.demo_more import MORE_MEETINGS, MoreSteps, more_config
from pbxsync.plugin.demo_portal import WEB_SECTION, check_portal, login_lines, set_demo_passwords
from pbxsync.plugin.logs import setup_logging
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.errors import PbxsyncError
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation

# The demo data ships inside the package (examples/ installs as pbxsync.examples), so an installed
# pbxsync runs its demo from any directory.
EXAMPLES = resources.files("pbxsync.examples")
PHONES_FILE = EXAMPLES / "demo-phones.json"
MAILBOXES_FILE = EXAMPLES / "demo-mailboxes.json"
AMI_USER, AMI_SECRET = "pbxsync", "demo-ami-secret"
CALLER_TO_LOOK_UP = "03012344711"  # Zoë Müller's "+49 30 1234-4711", as a German caller would arrive

# Added to the demo data (unless it has meetings with these uids) so every booking rule shows once:
# an invitee who is not a PBX user, an organizer who is not one (rejected), a meeting that is no conference,
# a private meeting (booked, shown under a placeholder, never its subject).
SCENARIO_MEETINGS: list[dict[str, Any]] = [
    {"uid": "demo-partner-call", "subject": "Partner call", "location": "PBX; Room 2.14",
     "organizer": {"email": "bob@example.com", "name": "Bob Builder"},
     "attendees": [{"email": "alice@example.com", "response": "accept"},
                   {"email": "dana@partner.example", "name": "Dana Doe", "response": "accept"}],
     "start": "today+2d 15:00", "duration_minutes": 30, "timezone": "Europe/Berlin"},
    {"uid": "demo-vendor", "subject": "Vendor pitch", "location": "PBX",
     "organizer": {"email": "sales@vendor.example", "name": "Vendor Sales"},
     "attendees": [{"email": "carol@example.com", "response": "accept"}],
     "start": "today+1d 14:00", "duration_minutes": 30, "timezone": "Europe/Berlin"},
    {"uid": "demo-private", "subject": "Salary talk with Alice", "location": "PBX", "sensitivity": "private",
     "organizer": {"email": "carol@example.com", "name": "Carol Jürgens"},
     "attendees": [{"email": "alice@example.com", "response": "accept"}],
     "start": "today+2d 10:00", "duration_minutes": 30, "timezone": "Europe/Berlin"},
    {"uid": "demo-lunch", "subject": "Team lunch", "location": "Canteen",
     "organizer": {"email": "carol@example.com"},
     "attendees": [{"email": "alice@example.com", "response": "accept"}],
     "start": "today+1d 12:00", "duration_minutes": 60, "timezone": "Europe/Berlin"},
    *MORE_MEETINGS,
]
DEMO_USERS = [
    {"extension": "101", "email": "alice@example.com", "name": "Alice Example", "room": "8001"},
    {"extension": "102", "email": "bob@example.com", "name": "Bob Builder", "room": "8002"},
    {"extension": "103", "email": "carol@example.com", "name": "Carol Jürgens", "room": "8003"},
]


class DemoStepFailed(Exception):
    pass


@dataclass
class Timeline:
    out: IO[str]
    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def say(self, text: str, indent: int = 0) -> None:
        stamp = f"[+{time.monotonic() - self.started:5.1f}s]"
        print(f"{stamp} {'  ' * indent}{text}", file=self.out, flush=True)

    def section(self, title: str) -> None:
        print(f"\n== {title}", file=self.out, flush=True)

    def step(self, name: str, ok: bool, detail: str = "") -> None:
        self.steps.append((name, ok, detail))
        self.say(f"{'ok' if ok else 'FAILED'}: {name}" + (f" ({detail})" if detail else ""))


def demo_config(workdir: Path, ews: EwsSimulator, ami_port: int, service_account: tuple[str, str]) -> Config:
    return parse_config(more_config({
        "database": str(workdir / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": service_account[0],
                     "password": service_account[1], "version": "Exchange2016"},
        "sync": {"interval_minutes": 0, "days_back": 1, "days_ahead": 14, "default_region": "DE"},
        "users": DEMO_USERS,
        "pbx": {"host": "127.0.0.1", "port": ami_port, "username": AMI_USER, "secret": AMI_SECRET,
                "dial": "PJSIP/{extension}", "rooms": ["8090"], "ping_interval_seconds": 5.0},
        "autocall": {"retries": 1, "retry_delay_seconds": 3, "ring_timeout_seconds": 5, "grace_minutes": 5},
        "agi": {"enabled": True, "listen": "127.0.0.1:0"},
        "ldap": {"enabled": True, "listen": "127.0.0.1:0", "base_dn": "ou=pbxsync,dc=example,dc=com",
                 "refresh_seconds": 0.5, "anonymous": True},  # loopback only: the demo searches like a phone
        "control": {"socket": str(workdir / "control.sock"), "metrics_listen": ""},
        "web": {**WEB_SECTION, "secret_key_file": str(workdir / "web-secret.key")},
        "log": {"level": "info", "format": "text"},
    }), str(workdir / "pbxsync.toml"))


def load_organisation(data_file: Path | Traversable) -> Organisation:
    """The demo mailboxes plus SCENARIO_MEETINGS; times like "now+30s" count from this moment."""
    data = json.loads(data_file.read_text(encoding="utf-8"))
    have = {m.get("uid") for m in data.get("meetings", [])}
    data["meetings"] = [*data.get("meetings", []), *(m for m in SCENARIO_MEETINGS if m["uid"] not in have)]
    return Organisation.from_dict(data, source=str(data_file))


def service_account(org: Organisation) -> tuple[str, str]:
    account = next((u for u in org.users() if u.can_impersonate), None)
    if account is None:
        raise DemoStepFailed("the demo data has no user with can_impersonate (the EWS service account)")
    return account.email, account.password


def _extension_of(channel: str) -> str:
    m = re.match(r"^[A-Za-z]+/([^-;/@]+)", channel)
    return m.group(1) if m else channel


@dataclass
class CallWatcher:
    """An observer AMI session: narrates OriginateResponse and ConfbridgeJoin events as they happen."""

    timeline: Timeline
    names: dict[str, str]
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    joined: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: AmiMessage) -> None:
        if event.name == "OriginateResponse":
            from pbxsync.plugin.ami.client import outcome_for_reason

            ext = _extension_of(event.get("Channel"))
            outcome = outcome_for_reason(event.get("Reason")).value
            self.outcomes.setdefault(ext, []).append(outcome)
            attempt = len(self.outcomes[ext])
            self.timeline.say(f"call {ext} ({self.names.get(ext, '?')}), attempt {attempt}: {outcome}", 1)
        elif event.name == "ConfbridgeJoin":
            ext = event.get("CallerIDNum")
            ext = ext if ext in self.names else _extension_of(event.get("Channel"))
            role = "host" if event.get("Admin") == "Yes" else "guest"
            self.joined[ext] = event.get("Conference")
            self.timeline.say(f"{ext} ({self.names.get(ext, '?')}) joined room {event.get('Conference')} "
                              f"as {role}", 1)
        self.changed.set()


class Demo:
    def __init__(self, out: IO[str], data_file: Path | None = None, phones_file: Path | None = None,
                 keep: bool = False, serve: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.t = Timeline(out)
        self.serve = serve  # called with the portal's URL after the last step, before the agent stops
        self.portal_url = ""
        self.data_file: Path | Traversable = data_file or MAILBOXES_FILE
        self.phones_file: Path | Traversable = phones_file or PHONES_FILE
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="pbxsync-demo-"))

    async def run(self) -> int:
        t = self.t
        t.section("Starting the simulated Exchange and Asterisk")
        try:
            org = load_organisation(self.data_file)
        except (OSError, ValueError, PbxsyncError) as exc:
            t.step("demo data loaded", False, f"{self.data_file}: {exc}")
            return 1
        ews = EwsSimulator(org).start()
        phones = load_phones(self.phones_file)
        ami = AsteriskSimulator(users=[SimUser(AMI_USER, AMI_SECRET), SimUser("observer", "observer-secret")],
                                phones=phones, login_fail_delay=0.1)
        await ami.start()
        setup_logging("info", "text", stream=(self.workdir / "pbxsync.log").open("a", encoding="utf-8"))
        daemon: Daemon | None = None
        watcher_client: AmiClient | None = None
        try:
            boxes = [u.email for u in org.users() if not u.can_impersonate]
            t.say(f"Exchange (EWS) simulator at {ews.ews_url}: mailboxes {', '.join(boxes)} "
                  f"({self.data_file.name} + {len(SCENARIO_MEETINGS)} scenario meetings)")
            t.say(f"Asterisk (AMI) simulator at 127.0.0.1:{ami.port}: phones "
                  + ", ".join(f"{p.extension} {p.behaviour.value}" for p in phones))
            config = demo_config(self.workdir, ews, ami.port, service_account(org))
            (self.workdir / "pbxsync.toml").write_text("# see the demo's Config; generated\n", encoding="utf-8")
            names = {u.extension: u.name for u in config.users}

            t.section("Starting the agent (the same services `pbxsync run` starts)")
            daemon = Daemon(config, stop_timeout=5.0)
            await daemon.start()
            for svc in daemon.status()["services"]:
                t.say(f"{svc['name']:<9} {svc['state']:<8} {svc['detail']}", 1)
            t.step("agent started", all(s["state"] == "running" for s in daemon.status()["services"]))

            watcher = CallWatcher(t, names)
            watcher_client = AmiClient(AmiSettings(port=ami.port, username="observer",
                                                   secret=Secret("observer-secret")))
            watcher_client.subscribe(["OriginateResponse", "ConfbridgeJoin"], watcher.on_event)
            watcher_client.start()
            await watcher_client.wait_connected(within=5)

            more = MoreSteps(t, daemon, config, ews, watcher_client, _agi_request)
            await self.sync_step(daemon)
            bookings = await self.bookings_step(daemon)
            await more.note_presence_before_start()
            await self.autocall_step(daemon, bookings, watcher, phones, config)
            await more.run()
            await self.ldap_step(daemon, config)
            await self.callerid_step(daemon)
            await self.portal_step(daemon)
            if self.serve is not None and all(ok for _, ok, _ in t.steps):
                await self.serve(self.portal_url)
        except DemoStepFailed as exc:
            t.step("demo", False, str(exc))
        finally:
            if watcher_client is not None:
                await watcher_client.stop()
            if daemon is not None:
                await daemon.shutdown()
            await ami.stop()
            await asyncio.to_thread(ews.stop)
        failed = [name for name, ok, _ in t.steps if not ok]
        t.section("Result")
        if failed:
            t.say(f"demo FAILED: {', '.join(failed)}; agent log: {self.workdir / 'pbxsync.log'}")
            return 1
        t.say(f"demo passed: {len(t.steps)} steps ok. Agent log: {self.workdir / 'pbxsync.log'}")
        for line in login_lines(self.portal_url):
            t.say(line)
        if self.serve is None:
            t.say("  (the portal ran while the demo ran: `pbxsync demo --serve` keeps it up until Ctrl-C)")
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return 0

    async def portal_step(self, daemon: Daemon) -> None:
        t = self.t
        t.section("The web portal")
        self.portal_url = await set_demo_passwords(daemon)
        problem = await check_portal(self.portal_url)
        t.step("portal: the admin signs in and sees the AUTOCALL outcomes chart", not problem,
               problem or self.portal_url)

    async def sync_step(self, daemon: Daemon) -> None:
        t = self.t
        t.section("Sync now: contacts and calendars of every PBX user")
        summary = await daemon.sync_now(None)
        for user in sorted(summary.users, key=lambda u: u.extension):
            c, k = user.contacts, user.calendar
            contacts_text = f"+{c.added}" if c and c.ok else f"FAILED {c.error if c else 'off'}"
            calendar_text = f"+{k.added} occurrences" if k and k.ok else f"FAILED {k.error if k else 'off'}"
            t.say(f"{user.extension} {user.mailbox}: contacts {contacts_text}, calendar {calendar_text}", 1)
        contacts = await _count(daemon, "SELECT count(*) FROM contacts")
        t.step("users synced", summary.ok and contacts > 0, f"{len(summary.users)} users, {contacts} contacts")

    async def bookings_step(self, daemon: Daemon) -> list[Any]:
        from pbxsync.plugin.booking.store import list_bookings

        t = self.t
        t.section("Bookings made from meetings whose Location starts with PBX")
        bookings = await list_bookings(daemon.store, daemon.clock.now(), include_all=True)
        for b in bookings:
            d = b.draft
            when = d.start.astimezone(UTC).strftime("%a %d %b %H:%M:%S UTC")
            if d.state.value == "rejected":
                t.say(f"rejected  '{d.subject}' ({when}): {d.reason}", 1)
                continue
            people = ", ".join(f"{p.extension}{' (host)' if p.role.value == 'host' else ''}"
                               for p in d.participants if p.invited)
            t.say(f"{d.state.value:<9} '{d.subject}' {when} room {d.room}"
                  f"{' AUTOCALL' if d.autocall else ''}: {people}", 1)
            if d.unmatched:
                t.say(f"not a PBX user, not added: {', '.join(d.unmatched)}", 2)
        scheduled = [b for b in bookings if b.draft.state.value == "scheduled"]
        rejected = [b for b in bookings if b.draft.state.value == "rejected"]
        private = [b for b in bookings if b.draft.private]
        t.step("bookings made and rejected", bool(scheduled) and bool(rejected) and bool(private),
               f"{len(scheduled)} booked ({len(private)} private, under a placeholder subject), {len(rejected)} "
               "rejected; meetings without PBX are ignored")
        return bookings

    async def autocall_step(self, daemon: Daemon, bookings: list[Any], watcher: CallWatcher, phones: list[Phone],
                            config: Config) -> None:
        t = self.t
        t.section("AUTOCALL: calling every participant at the start")
        auto = [b for b in bookings if b.draft.autocall and b.draft.state.value == "scheduled"
                and b.draft.end > daemon.clock.now()]
        if not auto:
            raise DemoStepFailed("no upcoming PBX AUTOCALL booking in the demo data")
        if daemon.supervisor.service("autocall") is None:
            t.say("the AUTOCALL part is not in this build yet: no calls are placed (step skipped)", 1)
            return
        booking = min(auto, key=lambda b: b.draft.start)
        behaviours = {p.extension: p.behaviour.value for p in phones}
        to_call = [p.extension for p in booking.draft.participants if p.call]
        expected = {ext: 1 if behaviours.get(ext) == "answer" else config.autocall.retries + 1 for ext in to_call}
        wait = (booking.draft.start - daemon.clock.now()).total_seconds()
        t.say(f"'{booking.draft.subject}' starts at {booking.draft.start.astimezone(UTC):%H:%M:%S} UTC "
              f"(in {max(0.0, wait):.0f} s); will call {', '.join(to_call)}", 1)
        await self._progress_until(booking.draft.start, "waiting for the start")
        deadline = time.monotonic() + 30 + config.autocall.retries * (
            config.autocall.retry_delay_seconds + config.autocall.ring_timeout_seconds)
        while not all(len(watcher.outcomes.get(e, [])) >= n for e, n in expected.items()):
            if time.monotonic() > deadline:
                break
            watcher.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.changed.wait(), 1.0)
        answered = [e for e in to_call if "answered" in watcher.outcomes.get(e, [])]
        want_answer = [e for e in to_call if behaviours.get(e) == "answer"]
        t.step("AUTOCALL calls placed", sorted(answered) == sorted(want_answer) and
               all(len(watcher.outcomes.get(e, [])) == n for e, n in expected.items()),
               f"answered: {', '.join(answered) or 'none'}; "
               + "; ".join(f"{e}: {' -> '.join(watcher.outcomes.get(e, ['no call']))}" for e in to_call))

    async def _progress_until(self, moment: datetime, what: str) -> None:
        last = -1
        while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
            shown = int(left) // 5 * 5
            if shown != last and left > 1:
                self.t.say(f"... {what}: {left:.0f} s", 1)
                last = shown
            await asyncio.sleep(min(left, 1.0))

    async def ldap_step(self, daemon: Daemon, config: Config) -> None:
        t = self.t
        t.section("LDAP phonebook: what a desk phone finds")
        service = daemon.supervisor.service("ldap")
        address = getattr(service, "address", "")
        if not address:
            t.step("LDAP phonebook search", False, "the LDAP part is not running")
            return
        ldap_filter = "(|(cn=*mül*)(telephoneNumber=*4711*))"
        t.say(f"ldapsearch -x -H ldap://{address} -b '{config.ldap.base_dn}' '{ldap_filter}'", 1)
        try:
            entries = await asyncio.wait_for(asyncio.to_thread(_ldap_search, address, config.ldap.base_dn,
                                                                ldap_filter), 10)
        except Exception as exc:  # the demo reports every failure as a step, never a traceback
            t.step("LDAP phonebook search", False, f"{type(exc).__name__}: {exc}")
            return
        for cn, numbers in entries:
            t.say(f"{cn}: {', '.join(numbers) or '(no number)'}", 2)
        t.step("LDAP phonebook search", any("Müller" in cn for cn, _ in entries), f"{len(entries)} entries")

    async def callerid_step(self, daemon: Daemon) -> None:
        t = self.t
        t.section("Caller ID over FastAGI: an inbound call from a synced contact")
        service = daemon.supervisor.service("agi")
        server = getattr(service, "server", None)
        address = getattr(server, "address", "") if server is not None else ""
        if not address:
            t.step("caller-ID lookup", False, "the FastAGI part is not running")
            return
        t.say(f"Asterisk asks agi://{address}/callerid for caller {CALLER_TO_LOOK_UP} calling 101", 1)
        try:
            commands = await asyncio.wait_for(_agi_request(address, "callerid", CALLER_TO_LOOK_UP, "101"), 10)
        except (OSError, TimeoutError) as exc:
            t.step("caller-ID lookup", False, str(exc))
            return
        names = [c for c in commands if c.upper().startswith("SET VARIABLE") and "CALLERID(NAME)" in c.upper()]
        for command in commands:
            t.say(f"agent -> Asterisk: {command}", 2)
        t.step("caller-ID lookup", any("Müller" in c for c in names),
               names[0] if names else "no CALLERID(name) was set")


async def _count(daemon: Daemon, sql: str) -> int:
    async with daemon.store.conn.execute(sql) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _ldap_search(address: str, base: str, ldap_filter: str) -> list[tuple[str, list[str]]]:
    import ldap3  # type: ignore[import-untyped]  # a test extra; `make demo` installs it

    host, port = address.rsplit(":", 1)
    server = ldap3.Server(host, port=int(port), get_info=ldap3.NONE, connect_timeout=5)
    with ldap3.Connection(server, auto_bind=True, receive_timeout=5) as conn:
        conn.search(base, ldap_filter, attributes=["cn", "telephoneNumber", "mobile"], size_limit=50)
        found = []
        for entry in conn.response or []:
            attrs = entry.get("attributes", {})
            cn = attrs.get("cn")
            cn_text = cn[0] if isinstance(cn, list) and cn else str(cn or "")
            numbers = [*attrs.get("telephoneNumber", []), *attrs.get("mobile", [])]
            found.append((cn_text, [str(n) for n in numbers]))
        return found


async def _agi_request(address: str, script: str, caller: str, called: str) -> list[str]:
    """Play Asterisk's side of one FastAGI call; return the commands the agent sent."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    env = {"agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://{address}/{script}",
           "agi_channel": "PJSIP/trunk-00000001", "agi_language": "en", "agi_type": "PJSIP",
           "agi_uniqueid": "1700000000.1", "agi_version": "22.10.1", "agi_callerid": caller,
           "agi_calleridname": caller, "agi_dnid": called, "agi_context": "from-trunk", "agi_extension": called,
           "agi_priority": "1", "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "1"}
    writer.write("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
    await writer.drain()
    commands: list[str] = []
    try:
        while line := await reader.readline():
            command = line.decode("utf-8", "replace").strip()
            if not command:
                continue
            commands.append(command)
            if command.upper().startswith("GET VARIABLE"):
                writer.write(b"200 result=0\n")
            else:
                writer.write(b"200 result=1\n")
            await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return commands


async def run_demo(out: IO[str] | None = None, data_file: Path | None = None, phones_file: Path | None = None,
                   keep: bool = False, serve: Callable[[str], Awaitable[None]] | None = None) -> int:
    return await Demo(out or sys.stdout, data_file, phones_file, keep, serve).run()
