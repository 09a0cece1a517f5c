"""Reliability proof: `pbxsync run` SIGKILLed at random (seeded) moments during sync and AUTOCALL, then
restarted, many times, against the EWS and AMI simulators.

Afterwards: no booking is lost, every answering participant is in the room exactly once (nobody was
called twice, no attempt was dialled twice), the busy one got no more than its allowed tries, and
`PRAGMA integrity_check` says ok.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, PhoneBehaviour, SimUser
from pbxsync.plugin.daemon.control_client import DaemonError, daemon_status, trigger_sync_in_daemon
from pbxsync.sync.config import Config, load_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from tests.support.pbxsync_run import without_listeners

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("PBXSYNC_CRASH_SEED", "20261127"))
KILLS = 10
RETRIES = 1
ANSWERING = {"101": 0.3, "102": 0.8}  # extension -> seconds until the phone answers
BUSY = "103"

DATA: dict[str, Any] = {
    "domain": "example.com",
    "users": [
        {"email": "alice@example.com", "name": "Alice", "password": "a-pw"},
        {"email": "bob@example.com", "name": "Bob", "password": "b-pw"},
        {"email": "carol@example.com", "name": "Carol", "password": "c-pw"},
        {"email": "svc@example.com", "name": "Service", "password": "svc-pw", "can_impersonate": True},
    ],
    "mailboxes": {
        "alice@example.com": {"contacts": [{"given_name": "Zoë", "surname": "Müller",
                                            "phones": {"business": "+49 30 1234-4711"}}]},
        "bob@example.com": {"contacts": [{"display_name": "Hotline", "phones": {"business": "030 999 000"}}]},
    },
    "meetings": [
        {"uid": "crash-early", "subject": "Early call", "location": "PBX AUTOCALL",
         "organizer": {"email": "alice@example.com"},
         "attendees": [{"email": "bob@example.com", "response": "accept"},
                       {"email": "carol@example.com", "response": "accept"}],
         "start": "now+7s", "duration_minutes": 30},
        {"uid": "crash-late", "subject": "Late call", "location": "PBX AUTOCALL",
         "organizer": {"email": "bob@example.com"},
         "attendees": [{"email": "alice@example.com", "response": "accept"}],
         "start": "now+14s", "duration_minutes": 30},
        {"uid": "crash-weekly", "subject": "Weekly", "location": "PBX", "organizer": {"email": "carol@example.com"},
         "attendees": [{"email": "alice@example.com", "response": "accept"}],
         "start": "today+1d 10:00", "duration_minutes": 30,
         "recurrence": {"pattern": "daily", "count": 5}},
    ],
}
EXPECTED_BOOKINGS = {"crash-early": 1, "crash-late": 1, "crash-weekly": 5}




@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(Organisation.from_dict(DATA)) as sim:
        yield sim


@pytest.fixture
async def ami() -> AsyncIterator[AsteriskSimulator]:
    phones = [Phone(ext, PhoneBehaviour.ANSWER, delay) for ext, delay in ANSWERING.items()]
    phones.append(Phone(BUSY, PhoneBehaviour.BUSY, 0.2))
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "ami-secret")], phones=phones)
    await sim.start()
    yield sim
    await sim.stop()


def write_config(tmp_path: Path, ews: EwsSimulator, ami_port: int) -> Config:
    path = tmp_path / "pbxsync.toml"
    path.write_text(f"""
database = "{tmp_path / 'pbxsync.db'}"
[exchange]
server = "{ews.ews_url}"
auth = "basic"
username = "svc@example.com"
password = "svc-pw"
[sync]
interval_minutes = 0
[[users]]
extension = "101"
email = "alice@example.com"
room = "8001"
[[users]]
extension = "102"
email = "bob@example.com"
room = "8002"
[[users]]
extension = "103"
email = "carol@example.com"
room = "8003"
[pbx]
port = {ami_port}
username = "pbxsync"
secret = "ami-secret"
ping_interval_seconds = 2.0
[autocall]
retries = {RETRIES}
retry_delay_seconds = 4
ring_timeout_seconds = 3
grace_minutes = 10
{without_listeners(tmp_path)}""", encoding="utf-8")
    return load_config(str(path))


class Agent:
    """One `pbxsync run` subprocess."""

    def __init__(self, config: Config, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pbxsync.plugin.cli", "--config", self.config.path, "run", cwd=ROOT,
                stdout=out, stderr=out)

    async def wait_ready(self, within: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            assert self.proc is not None and self.proc.returncode is None, self.log.read_text()[-3000:]
            try:
                doc = await asyncio.to_thread(daemon_status, self.config)
            except DaemonError:
                doc = None
            if doc is not None and all(s["state"] == "running" for s in doc["services"]):
                return
            assert loop.time() < deadline, "agent did not come up: " + self.log.read_text()[-3000:]
            await asyncio.sleep(0.05)

    def sync_in_background(self) -> asyncio.Future[Any]:
        def sync() -> Any:
            try:
                return trigger_sync_in_daemon(self.config, None)
            except DaemonError:
                return None  # killed mid-request: expected

        return asyncio.ensure_future(asyncio.to_thread(sync))

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)


def member_extensions(ami: AsteriskSimulator, room: str) -> list[str]:
    """Who is in a room, by the extension their channel dialled ("PJSIP/101-00000003;1" -> "101")."""
    return [m.channel.partition("/")[2].split("-")[0] for m in ami.members(room)]


def calls_by_extension(ami: AsteriskSimulator) -> Counter[str]:
    return Counter(o.get("Channel").partition("/")[2] for o in ami.originates if o.get("Channel"))


async def test_sigkill_during_sync_and_autocall_loses_nothing_and_calls_nobody_twice(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator) -> None:
    rng = random.Random(SEED)
    config = write_config(tmp_path, ews, ami.port)
    log = tmp_path / "agent.log"
    kill_moments: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    for cycle in range(KILLS):
        agent = Agent(config, log)
        await agent.start()
        await agent.wait_ready()
        # Change Exchange between passes, so every pass has something to write when it is killed.
        ews.org.update_meeting("crash-weekly", subject=f"Weekly #{cycle}")
        pending = agent.sync_in_background()
        await asyncio.sleep(rng.uniform(0.0, 1.6))  # the random (seeded) moment of the kill
        kill_moments.append(round(loop.time() - started, 2))
        await agent.kill()
        await pending
    # The survivor: runs until both meetings' calls are settled, then stops cleanly.
    agent = Agent(config, log)
    await agent.start()
    await agent.wait_ready()
    final = await asyncio.to_thread(trigger_sync_in_daemon, config, None)
    assert final is not None and final["ok"], final
    deadline = loop.time() + 40
    want_members = {"8001": {"101", "102", "103"} - {BUSY}, "8002": {"101", "102"}}
    while True:
        joined = {room: set(member_extensions(ami, room)) for room in want_members}
        busy_tries = calls_by_extension(ami)[BUSY]
        if joined == want_members and busy_tries >= 1:
            break
        assert loop.time() < deadline, f"calls not settled: {joined}, kills at {kill_moments}\n" + \
            log.read_text()[-4000:]
        ami.room_changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ami.room_changed.wait(), 1.0)
    assert await agent.terminate() == 0

    # Nobody called twice: one Originate per answering participant and meeting, never the same ChannelId twice.
    channel_ids = [o.get("ChannelId") for o in ami.originates if o.get("Channel")]
    assert len(channel_ids) == len(set(channel_ids)), channel_ids
    for room, members in want_members.items():
        in_room = member_extensions(ami, room)
        assert sorted(in_room) == sorted(members), (room, in_room)
    calls = calls_by_extension(ami)
    assert calls["101"] == 2 and calls["102"] == 2, (calls, kill_moments)  # one per meeting each
    assert calls[BUSY] <= RETRIES + 1, calls

    text = log.read_text(encoding="utf-8")
    print(f"kills at {kill_moments} s; meetings at 7 s and 14 s; "
          f"{text.count('marked unknown, not re-sent')} restart(s) found a call in flight; calls {dict(calls)}")
    # No booking lost, and the database is intact.
    db = sqlite3.connect(config.database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = Counter(uid for (uid,) in db.execute("SELECT uid FROM bookings WHERE state = 'scheduled'"))
        assert dict(rows) == EXPECTED_BOOKINGS
        subjects = {s for (s,) in db.execute("SELECT subject FROM bookings WHERE uid = 'crash-weekly'")}
        assert subjects == {f"Weekly #{KILLS - 1}"}
        stale = db.execute("SELECT count(*) FROM autocall_attempts WHERE outcome = 'pending'").fetchone()[0]
        assert stale == 0
    finally:
        db.close()
