"""The real-Asterisk "Must show" tests' world: answering test phones, `pbxsync run` and the CLI as an admin
runs them, and what the room shows (tests/integration/test_must_show_*.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

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
