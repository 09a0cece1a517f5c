"""Issue 4's "Must show", end to end on the REAL Asterisk 22, with the real `pbxsync run` process.

A real Asterisk (chroot from scripts/setup-asterisk.sh) with the shipped dialplan and confbridge files and
an AMI user holding exactly the least-privilege classes (read=call,system; write=originate,call,reporting);
a context of answering Local-channel test phones; the EWS simulator holding a `PBX AUTOCALL` meeting that
starts 20 s after the data is loaded, organized by alice (101) with bob (102) and carol (103) invited, all
three PBX users. `pbxsync --config FILE run` runs as a subprocess with the dial template
`Local/{extension}@pbxsync-test-phones`; the test then waits (polling with a deadline, no fixed sleeps)
until all three are in the room's ConfbridgeList and `pbxsync conferences --json` shows each participant
answered, and stops the daemon with SIGTERM (exit 0).

Why 20 s is enough: `[sync] interval_minutes = 1` spreads the users' first passes over one minute in
config order, and the first slot is "now", so the organizer (listed first) is synced as soon as the
daemon starts; her copy of the meeting alone makes the booking and arms its AUTOCALL timer, long before
the start. The invitees' copies (synced 20 s and 40 s later) are the same meeting (same UID) and change
nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.model import parse_utc
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from tests.support.asterisk_harness import AsteriskInstance
from tests.support.pbxsync_run import (
    MUST_SHOW_USERS,
    PBXSYNC,
    autocall_asterisk,
    conferences_json,
    daemon_config,
    extension_of,
    log_tail,
    pbxsync_running,
    poll,
    room_members,
)

pytestmark = pytest.mark.asterisk

ROOM = "8201"
PEOPLE = {"101": "alice@example.com", "102": "bob@example.com", "103": "carol@example.com"}
LEAD_SECONDS = 20




def organisation() -> Organisation:
    """Built at the moment the test needs it: "now+20s" counts from here."""
    return Organisation.from_dict({
        "domain": "example.com",
        "users": MUST_SHOW_USERS,
        "meetings": [
            {"uid": "must-show-autocall", "subject": "Must show: AUTOCALL", "location": "PBX AUTOCALL",
             "organizer": {"email": "alice@example.com", "name": "Alice Example"},
             "attendees": [{"email": "bob@example.com", "name": "Bob Builder", "response": "accept"},
                           {"email": "carol@example.com", "name": "Carol Jones", "response": "noresponse"}],
             "start": f"now+{LEAD_SECONDS}s", "duration_minutes": 30, "timezone": "Europe/Berlin"},
        ],
    }, source="must-show")


def config_text(tmp_path: Path, ews: EwsSimulator, pbx: AsteriskInstance) -> str:
    users = "".join(f'[[users]]\nextension = "{ext}"\nemail = "{email}"\n'
                    + (f'room = "{ROOM}"\n' if ext == "101" else "") for ext, email in PEOPLE.items())
    return daemon_config(tmp_path, ews.ews_url, pbx, users, [ROOM])


@pytest.fixture
def pbx(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return autocall_asterisk(asterisk_factory)


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


async def test_pbxsync_run_calls_organizer_and_invitees_into_the_room(
        tmp_path: Path, pbx: AsteriskInstance, ews: EwsSimulator) -> None:
    assert PBXSYNC.exists(), f"the pbxsync console script is not installed next to {sys.executable}"
    (meeting,) = ews.org.meetings("alice@example.com")
    start = meeting.start.astimezone(UTC)
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews, pbx), encoding="utf-8")
    log = tmp_path / "agent.log"

    agent_log = partial(log_tail, log)

    members: list[dict[str, str]] = []
    async with pbxsync_running(config, log) as proc:
        async def everybody_in_the_room() -> bool:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"
            members[:] = await room_members(pbx, ROOM)
            return {extension_of(m["Channel"]) for m in members} == set(PEOPLE)

        # Before the start nobody is called; by a generous margin after it, all three are in the room.
        await poll(everybody_in_the_room, start + timedelta(seconds=30),
                   lambda: f"not all in room {ROOM}: {members}\n{agent_log()}\n{pbx.log_tail(40)}")
        joined_at = datetime.now(UTC)
        assert joined_at >= start
        print(f"all three in room {ROOM} {(joined_at - start).total_seconds():.2f} s after the start")

        doc: list[dict[str, Any]] = []

        async def everybody_answered() -> bool:
            doc[:] = await conferences_json(config)
            return len(doc) == 1 and all(p["outcome"] == "answered" for p in doc[0]["participants"])

        await poll(everybody_answered, datetime.now(UTC) + timedelta(seconds=15),
                   lambda: f"conferences --json: {json.dumps(doc, indent=1)}\n{agent_log()}")

    assert proc.returncode == 0, agent_log()
    text = log.read_text(encoding="utf-8")
    assert '"msg": "stopped"' in text and "Traceback" not in text, agent_log()
    assert pbx.secret not in text and "svc-pw" not in text

    (booking,) = doc
    assert booking["autocall"] is True and booking["room"] == ROOM and booking["state"] == "active"
    assert booking["organizer"] == {"email": "alice@example.com", "extension": "101"}
    booked_start = parse_utc(booking["start"])
    assert abs(booked_start - start) < timedelta(seconds=1)  # EWS carries whole seconds
    people = {p["extension"]: p for p in booking["participants"]}
    assert {ext: p["email"] for ext, p in people.items()} == PEOPLE
    for p in people.values():
        assert p["outcome"] == "answered" and p["autocall"]["attempts"] == 1
        assert parse_utc(p["autocall"]["last_attempt_at"]) >= booked_start  # called at the start, not before

    # The room's members are pbxsync's calls (its ChannelId), through the shipped dialplan and profiles.
    assert all(m["Uniqueid"].startswith(f"pbxsync-{booking['id']}-") for m in members), members
    assert all(m["Context"] == "pbxsync-autocall" for m in members), members
    roles = {extension_of(m["Channel"]): (m["Admin"], m["MarkedUser"]) for m in members}
    assert roles == {"101": ("Yes", "Yes"), "102": ("No", "No"), "103": ("No", "No")}
