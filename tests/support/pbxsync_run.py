"""Driving the installed `pbxsync` console script against a real Asterisk, for the end-to-end "Must show"
tests (tests/integration/test_must_show_*.py): where things are, the Asterisk with the shipped dialplan and
answering test phones, the daemon's config, `pbxsync run` started and stopped, a CLI command, polling with
a deadline, and reading a ConfBridge room."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.asterisk_harness import AsteriskInstance

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan"
PBXSYNC = Path(sys.executable).with_name("pbxsync")  # the installed console script, as an admin runs it
PHONES_CONTEXT = "pbxsync-test-phones"
# Answering desk phones: the Local channel's ;2 leg answers and stays; its ;1 leg runs pbxsync-autocall.
TEST_PHONES = f"""\
[{PHONES_CONTEXT}]
exten => _1XX,1,NoOp(test phone ${{EXTEN}} answering)
 same => n,Answer()
 same => n,Wait(600)
 same => n,Hangup()
"""


async def pbxsync(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(str(PBXSYNC), "--config", str(config), *args, cwd=ROOT,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# The people every must-show organisation has: three PBX users and the impersonating service account.
MUST_SHOW_USERS: list[dict[str, Any]] = [
    {"email": "alice@example.com", "name": "Alice Example", "password": "alice-pw"},
    {"email": "bob@example.com", "name": "Bob Builder", "password": "bob-pw"},
    {"email": "carol@example.com", "name": "Carol Jones", "password": "carol-pw"},
    {"email": "svc-pbx@example.com", "name": "PBX service", "password": "svc-pw", "can_impersonate": True},
]


def without_listeners(tmp_path: Path) -> str:
    """Config TOML for an agent whose test looks at neither FastAGI nor LDAP: both off, the control endpoint on
    a socket in tmp_path and no metrics listener, so nothing but the parts under test binds a port."""
    return f"""
[agi]
enabled = false
[ldap]
enabled = false
[control]
socket = "{tmp_path / 'control.sock'}"
metrics_listen = ""
"""


def log_tail(log: Path) -> str:
    """The end of the agent's log, for an assertion message."""
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


async def conferences_json(config: Path) -> list[dict[str, Any]]:
    """`pbxsync conferences --json`, as an admin runs it."""
    code, out, err = await pbxsync(config, "conferences", "--json")
    assert code == 0, err
    doc: list[dict[str, Any]] = json.loads(out)
    return doc


async def service_status(config: Path, name: str) -> dict[str, Any] | None:
    """The named part's entry in `pbxsync status --json` ({} when it does not run); None: the agent is not up yet."""
    code, out, err = await pbxsync(config, "status", "--json")
    if code == 2:
        return None
    assert code == 0, err
    return next((dict(s) for s in json.loads(out)["services"] if s["name"] == name), {})


async def poll(check: Callable[[], Awaitable[bool]], until: datetime, why: Callable[[], str]) -> None:
    while not await check():
        assert datetime.now(UTC) < until, why()
        await asyncio.sleep(0.2)  # polling interval, not a wait for an outcome


async def room_members(pbx: AsteriskInstance, room: str) -> list[dict[str, str]]:
    async with pbx.ami() as ami:
        try:
            return await ami.action_list("ConfbridgeList", Conference=room)
        except AssertionError:  # "No active conferences." before anybody joined
            return []


def extension_of(channel: str) -> str:
    return channel.split("/", 1)[1].split("@", 1)[0]  # Local/101@pbxsync-test-phones-00000003;1 -> 101


def autocall_asterisk(asterisk_factory: Callable[..., AsteriskInstance], extensions: str = "") -> AsteriskInstance:
    """The real Asterisk with the shipped AUTOCALL dialplan and confbridge profiles, the answering test
    phones (and the contexts in `extensions`), and an AMI user holding exactly the least-privilege classes."""
    return asterisk_factory(dialplan_files=[DIALPLAN / "pbxsync-autocall.conf"],
                            confbridge_files=[DIALPLAN / "pbxsync-confbridge.conf"],
                            extensions=TEST_PHONES + extensions,
                            ami_read="call,system", ami_write="originate,call,reporting")


def daemon_config(tmp_path: Path, ews_url: str, pbx: AsteriskInstance, users: str, rooms: list[str],
                  metrics_listen: str = "127.0.0.1:0", interval_minutes: int = 1) -> str:
    """A `pbxsync run` config: the EWS simulator through the impersonating service account, timed passes
    every `interval_minutes` (the first user's first pass at once), `users` as [[users]] tables, AUTOCALL
    dialling the test phones, every other listener on a free loopback port."""
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
rooms = [{", ".join(f'"{room}"' for room in rooms)}]

[autocall]
ring_timeout_seconds = 20

[agi]
listen = "127.0.0.1:0"

[ldap]
listen = "127.0.0.1:0"

[control]
socket = "{tmp_path / 'control.sock'}"
metrics_listen = "{metrics_listen}"

[log]
format = "json"
"""


@contextlib.asynccontextmanager
async def pbxsync_running(config: Path, log: Path, *options: str) -> AsyncIterator[Any]:
    """`pbxsync [options] --config FILE run` as a subprocess writing to `log`; SIGTERM at the end of the
    block (killed if it has not stopped 30 s later). Yields the process: `returncode` after the block."""
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(str(PBXSYNC), *options, "--config", str(config), "run",
                                                    cwd=ROOT, stdout=sink, stderr=sink)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
