"""Issue 13's "Must show", end to end on the REAL Asterisk 22, with the real `pbxsync run` process and
`[sync] interval_minutes = 60`: no timed pass helps, only EWS streaming notifications can.

1. A `PBX AUTOCALL` meeting is created in the EWS simulator LEAD seconds before its start, after the
   daemon is up and subscribed: every participant (organizer alice, invitees bob and carol) is called into
   the room on time, each exactly once. The issue asks for 90 s; CI uses 25 s (set
   PBXSYNC_MUST_SHOW_LEAD_SECONDS=90 to run the issue's case by hand).
2. A `PBX` meeting cancelled in the simulator disappears from `pbxsync conferences --json` within 5 s.

The harness (answering Local-channel phones, the shipped dialplan and confbridge profiles, the
least-privilege AMI user, `pbxsync run` started and stopped) is tests/support/pbxsync_run.py, as for
issue 4's test_must_show_autocall.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxsync.sync.model import parse_utc
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import AttendeeRecord, MeetingRecord, Organisation
from tests.support.asterisk_harness import AsteriskInstance
from tests.support.pbxsync_run import (
    MUST_SHOW_USERS,
    autocall_asterisk,
    conferences_json,
    daemon_config,
    extension_of,
    log_tail,
    pbxsync,
    pbxsync_running,
    poll,
    room_members,
)

pytestmark = pytest.mark.asterisk

LEAD = float(os.environ.get("PBXSYNC_MUST_SHOW_LEAD_SECONDS", "25"))
ROOMS = {"101": "8201", "102": "8202"}  # alice's (the AUTOCALL meeting) and bob's (the cancelled one)
PEOPLE = {"101": "alice@example.com", "102": "bob@example.com", "103": "carol@example.com"}
BERLIN = ZoneInfo("Europe/Berlin")


def organisation() -> Organisation:
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    return Organisation.from_dict({
        "domain": "example.com",
        "users": MUST_SHOW_USERS,
        "meetings": [
            {"uid": "to-be-cancelled", "subject": "Planning", "location": "PBX",
             "organizer": {"email": "bob@example.com", "name": "Bob Builder"},
             "attendees": [{"email": "carol@example.com", "name": "Carol Jones", "response": "accept"}],
             "start": later.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration_minutes": 30, "timezone": "UTC"},
        ],
    }, source="must-show-notifications")


def config_text(tmp_path: Path, ews: EwsSimulator, pbx: AsteriskInstance) -> str:
    users = "".join(f'[[users]]\nextension = "{ext}"\nemail = "{email}"\n'
                    + (f'room = "{ROOMS[ext]}"\n' if ext in ROOMS else "") for ext, email in PEOPLE.items())
    return daemon_config(tmp_path, ews.ews_url, pbx, users, list(ROOMS.values()), interval_minutes=60)


@pytest.fixture
def pbx(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return autocall_asterisk(asterisk_factory)


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


async def test_a_short_notice_autocall_calls_everybody_and_a_cancellation_shows_within_5_seconds(
        tmp_path: Path, pbx: AsteriskInstance, ews: EwsSimulator) -> None:
    room = ROOMS["101"]
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews, pbx), encoding="utf-8")
    log = tmp_path / "agent.log"

    agent_log = partial(log_tail, log)

    status: dict[str, Any] = {}
    doc: list[dict[str, Any]] = []
    members: list[dict[str, str]] = []
    async with pbxsync_running(config, log) as proc:
        def running() -> None:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"

        async def subscribed() -> bool:
            running()
            code, out, _ = await pbxsync(config, "status", "--json")
            if code == 2:  # not up yet
                return False
            status.update(json.loads(out))
            (sync,) = [s for s in status["services"] if s["name"] == "sync"]
            feed = (sync.get("data") or {}).get("notifications") or {}
            return bool(feed.get("subscriptions_healthy") == 3 and sync["data"].get("passes"))

        await poll(subscribed, datetime.now(UTC) + timedelta(seconds=60), lambda: f"{status}\n{agent_log()}")

        async def planning_booked() -> bool:
            doc[:] = await conferences_json(config)
            return [b["uid"] for b in doc] == ["to-be-cancelled"]

        # The feed's first subscriptions catch every folder up once: the PBX meeting is booked long before
        # the first timed pass of its organizer (minutes away).
        await poll(planning_booked, datetime.now(UTC) + timedelta(seconds=30), lambda: f"{doc}\n{agent_log()}")

        # 1. A PBX AUTOCALL meeting created LEAD seconds before its start.
        start = (datetime.now(UTC) + timedelta(seconds=LEAD)).replace(microsecond=0)
        ews.org.add_meeting(MeetingRecord(
            "", "", "short-notice", "Short notice", start.astimezone(BERLIN),
            (start + timedelta(minutes=30)).astimezone(BERLIN), "Europe/Berlin", location="PBX AUTOCALL",
            organizer_email="alice@example.com", organizer_name="Alice Example",
            attendees=(AttendeeRecord("bob@example.com", "Bob Builder", "required", "accept"),
                       AttendeeRecord("carol@example.com", "Carol Jones", "required", "noresponse"))))
        created = datetime.now(UTC)

        async def autocall_booked() -> bool:
            doc[:] = await conferences_json(config)
            return any(b["uid"] == "short-notice" for b in doc)

        await poll(autocall_booked, start, lambda: f"{doc}\n{agent_log()}")
        print(f"AUTOCALL meeting booked {(datetime.now(UTC) - created).total_seconds():.2f} s after it was "
              f"created, {(start - datetime.now(UTC)).total_seconds():.1f} s before its start")

        async def everybody_in_the_room() -> bool:
            running()
            members[:] = await room_members(pbx, room)
            return {extension_of(m["Channel"]) for m in members} == set(PEOPLE)

        await poll(everybody_in_the_room, start + timedelta(seconds=30),
                   lambda: f"not all in room {room}: {members}\n{agent_log()}\n{pbx.log_tail(40)}")
        joined_at = datetime.now(UTC)
        assert joined_at >= start
        print(f"all three in room {room} {(joined_at - start).total_seconds():.2f} s after the start")

        async def everybody_answered() -> bool:
            doc[:] = [b for b in await conferences_json(config) if b["uid"] == "short-notice"]
            return len(doc) == 1 and all(p["outcome"] == "answered" for p in doc[0]["participants"])

        await poll(everybody_answered, datetime.now(UTC) + timedelta(seconds=15),
                   lambda: f"conferences --json: {json.dumps(doc, indent=1)}\n{agent_log()}")
        (booking,) = doc
        assert abs(parse_utc(booking["start"]) - start) < timedelta(seconds=1)
        people = {p["extension"]: p for p in booking["participants"]}
        assert {ext: p["email"] for ext, p in people.items()} == PEOPLE
        for p in people.values():
            assert p["autocall"]["attempts"] == 1  # on time, once: never before the start, never twice
            assert parse_utc(p["autocall"]["last_attempt_at"]) >= parse_utc(booking["start"])

        # 2. A PBX meeting cancelled in Exchange is gone from `conferences --json` within 5 seconds.
        ews.org.cancel_meeting("to-be-cancelled")
        cancelled = datetime.now(UTC)

        async def gone() -> bool:
            return all(b["uid"] != "to-be-cancelled" for b in await conferences_json(config))

        await poll(gone, cancelled + timedelta(seconds=5), lambda: f"still listed\n{agent_log()}")
        print(f"cancelled meeting gone from conferences --json "
              f"{(datetime.now(UTC) - cancelled).total_seconds():.2f} s after the cancellation")

    assert proc.returncode == 0, agent_log()
    text = log.read_text(encoding="utf-8")
    assert '"msg": "stopped"' in text and "Traceback" not in text, agent_log()
    assert pbx.secret not in text and "svc-pw" not in text
    passes = [json.loads(line) for line in text.splitlines() if '"sync pass (' in line]
    after = [p for p in passes if datetime.fromisoformat(p["ts"]) >= created]
    assert after and all(p.get("trigger") == "notify" for p in after)  # no timed pass came into it
