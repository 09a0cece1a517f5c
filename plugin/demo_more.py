"""The demo's steps for this round's parts, after the AUTOCALL step of plugin.demo's timeline:

- presence: the AUTOCALL organizer's custom device state is BUSY now that the meeting runs, and the
  `/presence` FastAGI answer for a call to them says so;
- write-back: the "Join by phone" block in the organizer's AUTOCALL meeting, read back through EWS;
- notices: one mail to the PBX organizer whose meeting found no free room, none to the outside organizer;
- XML phonebook: alice's Yealink book over HTTP Basic, then the same request with its ETag -> 304.

plugin.demo calls `more_config` on its config, `MoreSteps.note_presence_before_start()` before the
AUTOCALL step and `MoreSteps.run()` after it; the scenario meetings here join plugin.demo's. Every
failure is a FAILED step, never a traceback.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.writeback.render import find_block
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.sources.factory import make_source
from pbxsync.sync.sources.writer import ItemBody, writer_for

if TYPE_CHECKING:
    from pbxsync.plugin.demo import Timeline

DIAL_IN_NUMBER = "+49 30 1234567"
WRITTEN_MEETING = "demo-autocall"  # alice organizes it; alice's calendar is synced, so it can be written
ORGANIZER_EXTENSION, ORGANIZER_EMAIL = "101", "alice@example.com"
PHONEBOOK_LOGIN, PHONEBOOK_PASSWORD = "101", "alice-phone-demo"
NOTIFIED_ORGANIZER = "bob@example.com"
OUTSIDE_MEETING = "Vendor pitch"
PRESENCE_CALLER = "03012344711"  # any outside caller: /presence answers for the called user
WRITE_BACK_STEP = "write-back: Join-by-phone block in the meeting"
PHONEBOOK_STEP = "XML phonebook: Yealink book, then 304"

# Bob's "Partner call" holds his room 8002 at today+2d 15:00; "Budget review" takes the pool room 8090
# and "Roadmap review" finds no room free: rejected, and Bob (a PBX user) gets a notice.
MORE_MEETINGS: list[dict[str, Any]] = [
    {"uid": "demo-budget", "subject": "Budget review", "location": "PBX",
     "organizer": {"email": "bob@example.com", "name": "Bob Builder"},
     "attendees": [{"email": "carol@example.com", "response": "accept"}],
     "start": "today+2d 15:00", "duration_minutes": 30, "timezone": "Europe/Berlin"},
    {"uid": "demo-roadmap", "subject": "Roadmap review", "location": "PBX",
     "organizer": {"email": "bob@example.com", "name": "Bob Builder"},
     "attendees": [{"email": "alice@example.com", "response": "accept"}],
     "start": "today+2d 15:15", "duration_minutes": 30, "timezone": "Europe/Berlin"},
]


def more_config(raw: dict[str, Any]) -> dict[str, Any]:
    """plugin.demo's raw config with this round's parts switched on (a copy; loopback ports chosen by the OS)."""
    users = [{**u, "ldap_password": PHONEBOOK_PASSWORD} if u["extension"] == PHONEBOOK_LOGIN else u
             for u in raw["users"]]
    return {**raw, "users": users,
            "pbx": {**raw["pbx"], "dial_in_numbers": [DIAL_IN_NUMBER]},
            "meetings": {**raw.get("meetings", {}), "write_back": True, "notify_organizer": True},
            "phonebook": {"listen": "127.0.0.1:0", "refresh_seconds": 0.5},
            "presence": {"enabled": True, "timezone": "Europe/Berlin"}}


AgiRequest = Callable[[str, str, str, str], Awaitable[list[str]]]


@dataclass
class MoreSteps:
    t: Timeline
    daemon: Daemon
    config: Config
    ews: EwsSimulator
    observer: AmiClient  # an AMI session of its own, as an admin's `asterisk -rx` would look
    agi_request: AgiRequest  # plugin.demo's FastAGI caller (Asterisk's side of one call)
    before_start: str = ""  # the organizer's device state before the AUTOCALL meeting started

    async def note_presence_before_start(self) -> None:
        """Called before plugin.demo waits for the AUTOCALL meeting: the state the presence step compares."""
        self.before_start = await self._device_state_until(self.device, "NOT_INUSE", within=5.0)

    @property
    def device(self) -> str:
        return f"Custom:pbxsync-{ORGANIZER_EXTENSION}"

    async def run(self) -> None:
        await self.presence_step()  # first: the AUTOCALL meeting has just started
        await self.write_back_step()
        await self.notices_step()
        await self.phonebook_step()

    async def write_back_step(self) -> None:
        t = self.t
        t.section('Write-back: the "Join by phone" block in the organizer\'s meeting')
        copy = next((m for box, m in self.ews.org.copies(WRITTEN_MEETING) if box == ORGANIZER_EMAIL), None)
        if copy is None:
            t.step(WRITE_BACK_STEP, False, f"no meeting {WRITTEN_MEETING!r} in {ORGANIZER_EMAIL}'s calendar")
            return
        t.say(f"[meetings] write_back = true, [pbx] dial_in_numbers = [\"{DIAL_IN_NUMBER}\"]; "
              f"{ORGANIZER_EMAIL}'s '{copy.subject}', read back over EWS:", 1)
        try:
            body = await asyncio.wait_for(self._read_body(copy.item_id), 15)
        except (PbxsyncError, OSError, TimeoutError) as exc:
            t.step(WRITE_BACK_STEP, False, f"{type(exc).__name__}: {exc}")
            return
        found = find_block(body.content, body.is_html) if body is not None else None
        if body is None or found is None:
            t.step(WRITE_BACK_STEP, False, "no Join-by-phone block in the meeting body")
            return
        lines = readable_lines(body.content[found[0]:found[1]], body.is_html)
        for line in lines:
            t.say(line, 2)
        t.step(WRITE_BACK_STEP, any(DIAL_IN_NUMBER in x for x in lines),
               f"{len(self.ews.org.writes.log(ORGANIZER_EMAIL))} write(s) to {ORGANIZER_EMAIL}")

    async def _read_body(self, item_id: str) -> ItemBody | None:
        source = make_source(self.config)
        try:
            writer = writer_for(source)
            if writer is None:
                return None
            [body] = await writer.read_bodies(ORGANIZER_EMAIL, [item_id])
            return body if isinstance(body, ItemBody) else None
        finally:
            await source.close()

    async def notices_step(self) -> None:
        t = self.t
        t.section("Notices: the organizer learns why a meeting got no conference")
        sent = self.ews.outbox.as_json()
        t.say("[meetings] notify_organizer = true: a PBX user whose meeting cannot be booked is mailed why "
              "(an outside organizer never is)", 1)
        t.say(f"the Exchange simulator's outbox holds {len(sent)} mail(s):", 1)
        for mail in sent:
            t.say(f"To: {', '.join(mail['to'])}", 2)
            t.say(f"Subject: {mail['subject']}", 2)
        to_organizer = [m for m in sent if m["to"] == [NOTIFIED_ORGANIZER]]
        about_outside = [m for m in sent if OUTSIDE_MEETING in m["subject"]]
        t.step("notice to the PBX organizer, none for the outside one",
               len(to_organizer) == 1 and not about_outside,
               f"{len(to_organizer)} to {NOTIFIED_ORGANIZER}, {len(about_outside)} about '{OUTSIDE_MEETING}'")

    async def phonebook_step(self) -> None:
        t = self.t
        t.section("XML phonebook: what a Yealink phone downloads")
        service = self.daemon.supervisor.service("phonebook")
        addresses = getattr(getattr(service, "server", None), "addresses", [])
        if not addresses:
            t.step(PHONEBOOK_STEP, False, "the phonebook part is not running")
            return
        host, port = addresses[0]
        url = f"http://{host}:{port}/yealink.xml"
        t.say("[phonebook]: the contacts a user sees over LDAP, as the XML their desk phone downloads "
              "with their login", 1)
        t.say(f"curl -u {PHONEBOOK_LOGIN}:*** {url}", 1)
        try:
            status, etag, document = await _get(url, "")
            names = yealink_entries(document)
            for name, numbers in names[:2]:
                t.say(f"{name}: {', '.join(numbers)}", 2)
            t.say(f"curl -u {PHONEBOOK_LOGIN}:*** -H 'If-None-Match: {etag}' {url}", 1)
            again, _, _ = await _get(url, etag)
        except (aiohttp.ClientError, OSError, TimeoutError, ET.ParseError) as exc:
            t.step(PHONEBOOK_STEP, False, f"{type(exc).__name__}: {exc}")
            return
        t.say(f"HTTP {again}: the phone keeps its copy", 2)
        t.step(PHONEBOOK_STEP, status == 200 and len(names) >= 2 and again == 304,
               f"HTTP {status} with {len(names)} entries, then HTTP {again}")

    async def presence_step(self) -> None:
        t = self.t
        t.section("Presence: the organizer is busy while the AUTOCALL meeting runs")
        t.say("[presence] enabled = true: the calendar sets a custom device state that BLF keys show and the "
              "dialplan's /presence route asks before ringing", 1)
        device = self.device
        t.say(f"before the start: {device} {self.before_start or 'not read'}", 1)
        state = await self._device_state_until(device, "BUSY", within=10.0)
        t.say(f"now: {device} {state}", 1)
        agi = self.daemon.supervisor.service("agi")
        address = getattr(getattr(agi, "server", None), "address", "")
        answers: list[str] = []
        if address:
            t.say(f"Asterisk asks agi://{address}/presence for a call to {ORGANIZER_EXTENSION}", 1)
            try:
                answers = await asyncio.wait_for(self.agi_request(address, "presence", PRESENCE_CALLER,
                                                                  ORGANIZER_EXTENSION), 10)
            except (OSError, TimeoutError) as exc:
                t.say(f"no answer: {exc}", 2)
            for command in answers:
                t.say(f"agent -> Asterisk: {command}", 2)
        busy = any(re.fullmatch(r'SET VARIABLE PBXSYNC_BUSY "?1"?', c.strip(), re.IGNORECASE) for c in answers)
        t.step("presence: organizer BUSY during the meeting",
               self.before_start == "NOT_INUSE" and state == "BUSY" and busy,
               f"{device} {self.before_start or '?'} -> {state}; /presence PBXSYNC_BUSY={'1' if busy else '0'}")

    async def _device_state_until(self, device: str, wanted: str, within: float) -> str:
        """The device state read over AMI, polled until it is `wanted` or `within` seconds passed."""
        deadline = time.monotonic() + within
        state = "UNKNOWN"
        while True:
            try:
                reply = await self.observer.action("Getvar", [("Variable", f"DEVICE_STATE({device})")], within=5)
                state = reply.get("Value") or "UNKNOWN"
            except (PbxsyncError, OSError, TimeoutError) as exc:
                state = f"unreadable ({exc})"
            if state == wanted or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.2)


def readable_lines(block: str, is_html: bool) -> list[str]:
    """The block's lines as the organizer reads them: markers and HTML tags dropped, blank lines skipped."""
    if is_html:
        with_breaks = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>", "\n", block)
        block = html.unescape(re.sub(r"<!--.*?-->|<[^>]+>", "", with_breaks, flags=re.S))
    lines = (line.strip() for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("=== pbxsync:")]


async def _get(url: str, etag: str) -> tuple[int, str, bytes]:
    """(status, ETag, body) of one GET with the demo user's Basic credentials, as a phone asks."""
    headers = {"If-None-Match": etag} if etag else {}
    auth = aiohttp.BasicAuth(PHONEBOOK_LOGIN, PHONEBOOK_PASSWORD)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
            session.get(url, auth=auth, headers=headers) as response:
        return response.status, response.headers.get("ETag", ""), await response.read()


def yealink_entries(document: bytes) -> list[tuple[str, list[str]]]:
    root = ET.fromstring(document)  # noqa: S314 - our own server's document
    return [(entry.findtext("Name", ""), [n.text or "" for n in entry.findall("Telephone")])
            for entry in root.iter("DirectoryEntry")]
