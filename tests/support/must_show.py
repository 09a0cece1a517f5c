"""The real-Asterisk "Must show" tests' world: answering test phones, `pbxsync run` and the CLI as an admin
runs them, and what the room shows (tests/integration/test_must_show_*.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.asterisk_harness import AsteriskInstance

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan"
PBXSYNC = Path(sys.executable).with_name("pbxsync")  # the installed console script, as an admin runs it
ROOM = "8201"
PHONES_CONTEXT = "pbxsync-test-phones"
# Answering desk phones: the Local channel's ;2 leg answers and stays; its ;1 leg runs pbxsync-autocall.
TEST_PHONES = f"""\
[{PHONES_CONTEXT}]
exten => _1XX,1,NoOp(test phone ${{EXTEN}} answering)
 same => n,Answer()
 same => n,Wait(600)
 same => n,Hangup()
"""
PEOPLE = {"101": "alice@example.com", "102": "bob@example.com", "103": "carol@example.com"}
# The data file's users: the three PEOPLE and the service account that impersonates them.
USERS = [
    {"email": "alice@example.com", "name": "Alice Example", "password": "alice-pw"},
    {"email": "bob@example.com", "name": "Bob Builder", "password": "bob-pw"},
    {"email": "carol@example.com", "name": "Carol Jones", "password": "carol-pw"},
    {"email": "svc-pbx@example.com", "name": "PBX service", "password": "svc-pw", "can_impersonate": True},
]


def start_answering_asterisk(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    """A real Asterisk with the shipped dialplan and confbridge profiles, the answering test phones and an
    AMI user holding exactly the least-privilege classes."""
    return asterisk_factory(dialplan_files=[DIALPLAN / "pbxsync-autocall.conf"],
                            confbridge_files=[DIALPLAN / "pbxsync-confbridge.conf"],
                            extensions=TEST_PHONES,
                            ami_read="call,system", ami_write="originate,call,reporting")


async def pbxsync(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(str(PBXSYNC), "--config", str(config), *args, cwd=ROOT,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def poll(check: Callable[[], Awaitable[bool]], until: datetime, why: Callable[[], str]) -> None:
    while not await check():
        assert datetime.now(UTC) < until, why()
        await asyncio.sleep(0.2)  # polling interval, not a wait for an outcome


async def room_members(pbx: AsteriskInstance) -> list[dict[str, str]]:
    async with pbx.ami() as ami:
        try:
            return await ami.action_list("ConfbridgeList", Conference=ROOM)
        except AssertionError:  # "No active conferences." before anybody joined
            return []


def extension_of(channel: str) -> str:
    return channel.split("/", 1)[1].split("@", 1)[0]  # Local/101@pbxsync-test-phones-00000003;1 -> 101


def agent_config(tmp_path: Path, ews_url: str, pbx: AsteriskInstance, interval_minutes: int,
                 rooms: Mapping[str, str]) -> str:
    """The config of the must-show agent: PEOPLE as users (those in `rooms` with their room), the service
    account impersonating them, the answering test phones as dial target."""
    users = "".join(f'[[users]]\nextension = "{ext}"\nemail = "{email}"\n'
                    + (f'room = "{rooms[ext]}"\n' if ext in rooms else "") for ext, email in PEOPLE.items())
    listed = ", ".join(f'"{room}"' for room in rooms.values())
    return f"""
database = "{tmp_path / 'pbxsync.db'}"

[exchange]
server = "{ews_url}"
auth = "basic"
username = "svc-pbx@example.com"
password = "svc-pw"

[sync]
interval_minutes = {interval_minutes}

{users}
[pbx]
host = "127.0.0.1"
port = {pbx.port}
username = "{pbx.user}"
secret = "{pbx.secret}"
dial = "Local/{{extension}}@{PHONES_CONTEXT}"
rooms = [{listed}]

[autocall]
ring_timeout_seconds = 20

[agi]
listen = "127.0.0.1:0"

[ldap]
listen = "127.0.0.1:0"

[control]
socket = "{tmp_path / 'control.sock'}"
metrics_listen = "127.0.0.1:0"

[log]
format = "json"
"""


class Agent:
    """`pbxsync run` as a subprocess (as an admin runs it), its log, and its clean stop."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: asyncio.subprocess.Process | None = None

    def tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def assert_running(self) -> None:
        assert self.proc is not None and self.proc.returncode is None, \
            f"pbxsync run exited with {self.proc.returncode if self.proc else None}\n{self.tail()}"

    def stopped_cleanly(self, pbx: AsteriskInstance) -> str:
        """After `running`: exit 0, "stopped" logged, no traceback, no secret in the log. Returns the log."""
        assert self.proc is not None and self.proc.returncode == 0, self.tail()
        text = self.log.read_text(encoding="utf-8")
        assert '"msg": "stopped"' in text and "Traceback" not in text, self.tail()
        assert pbx.secret not in text and "svc-pw" not in text
        return text


@contextlib.asynccontextmanager
async def running(config: Path, log: Path) -> AsyncIterator[Agent]:
    """Start `pbxsync --config CONFIG run`; at the end SIGTERM it and wait (killed after 30 s)."""
    agent = Agent(config, log)
    with log.open("wb") as sink:
        agent.proc = await asyncio.create_subprocess_exec(str(PBXSYNC), "--config", str(config), "run", cwd=ROOT,
                                                          stdout=sink, stderr=sink)
    proc = agent.proc
    try:
        yield agent
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def conferences(config: Path) -> list[dict[str, Any]]:
    """`pbxsync conferences --json`, run as an admin runs it."""
    code, out, err = await pbxsync(config, "conferences", "--json")
    assert code == 0, err
    doc: list[dict[str, Any]] = json.loads(out)
    return doc


async def everybody_in_the_room(agent: Agent, pbx: AsteriskInstance, start: datetime) -> list[dict[str, str]]:
    """Wait (by 30 s after `start`) until every one of PEOPLE is in ROOM; nobody may be there before `start`.
    Returns the room's members (ConfbridgeList)."""
    members: list[dict[str, str]] = []

    async def all_in() -> bool:
        agent.assert_running()
        members[:] = await room_members(pbx)
        return {extension_of(m["Channel"]) for m in members} == set(PEOPLE)

    await poll(all_in, start + timedelta(seconds=30),
               lambda: f"not all in room {ROOM}: {members}\n{agent.tail()}\n{pbx.log_tail(40)}")
    joined_at = datetime.now(UTC)
    assert joined_at >= start
    print(f"all three in room {ROOM} {(joined_at - start).total_seconds():.2f} s after the start")
    return members


async def everybody_answered(agent: Agent, uid: str) -> list[dict[str, Any]]:
    """Wait (15 s) until `conferences --json` shows the booking of `uid` with every participant answered.
    Returns the whole listing."""
    doc: list[dict[str, Any]] = []

    async def answered() -> bool:
        doc[:] = await conferences(agent.config)
        return any(b["uid"] == uid and all(p["outcome"] == "answered" for p in b["participants"]) for b in doc)

    await poll(answered, datetime.now(UTC) + timedelta(seconds=15),
               lambda: f"conferences --json: {json.dumps(doc, indent=1)}\n{agent.tail()}")
    return doc
