"""Issue 12's "Must show" for the calendar side, end to end: the real `pbxsync run` daemon, the REAL
Asterisk 22 (chroot from scripts/setup-asterisk.sh, shipped dialplan and confbridge profiles,
least-privilege AMI classes) and the EWS simulator.

One private `PBX AUTOCALL` meeting, organized by alice (101), is addressed to nobody by name but to the
distribution group team@example.com, which holds bob (102) and carol (103) through a nested group, an
outside contact, and a loop back to itself. Bob's and Carol's calendars are not synced, so only the group
expansion (ExpandDL) can bring them in. The test waits until all three are in the room, then shows:

- both group members were called and joined (`conferences --json`: `via_group`, outcome answered);
- the meeting is booked, but its subject appears nowhere: not in `conferences --json`, not in the
  daemon's log written at DEBUG (`--debug`), not in /metrics, not in the caller ID Asterisk shows.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pbxsync.plugin.booking.privacy import PRIVATE_SUBJECT
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from tests.support.asterisk_harness import AsteriskInstance
from tests.support.pbxsync_run import (
    MUST_SHOW_USERS,
    PBXSYNC,
    autocall_asterisk,
    daemon_config,
    extension_of,
    log_tail,
    pbxsync,
    pbxsync_running,
    poll,
    room_members,
)
from tests.support.ports import port_for_config

pytestmark = pytest.mark.asterisk

ROOM = "8202"
SECRET_SUBJECT = "Merger with Contoso: do not forward"
LEAD_SECONDS = 20


def organisation() -> Organisation:
    """Built when the test needs it: "now+20s" counts from here."""
    return Organisation.from_dict({
        "domain": "example.com",
        "users": MUST_SHOW_USERS,
        "groups": [
            {"email": "team@example.com", "name": "Team", "members": ["bob@example.com", "inner@example.com",
                                                                       "consultant@partner.org"]},
            {"email": "inner@example.com", "name": "Inner circle", "kind": "security",
             "members": ["carol@example.com", "team@example.com"]},
        ],
        "meetings": [
            {"uid": "must-show-group-call", "subject": SECRET_SUBJECT, "location": "PBX AUTOCALL",
             "sensitivity": "private", "organizer": {"email": "alice@example.com", "name": "Alice Example"},
             "attendees": [{"email": "team@example.com", "name": "Team", "response": "noresponse"}],
             "start": f"now+{LEAD_SECONDS}s", "duration_minutes": 30, "timezone": "Europe/Berlin"},
        ],
    }, source="must-show-messy")


def config_text(tmp_path: Path, ews: EwsSimulator, pbx: AsteriskInstance, metrics_port: int) -> str:
    users = (f'[[users]]\nextension = "101"\nemail = "alice@example.com"\nroom = "{ROOM}"\n\n'
             + "".join(f'[[users]]\nextension = "{ext}"\nemail = "{email}"\nsync_calendar = false\n\n'
                       for ext, email in (("102", "bob@example.com"), ("103", "carol@example.com"))))
    return daemon_config(tmp_path, ews.ews_url, pbx, users, [ROOM], metrics_listen=f"127.0.0.1:{metrics_port}")


@pytest.fixture
def pbx(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return autocall_asterisk(asterisk_factory)


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode("utf-8"))


async def test_a_private_group_invitation_calls_the_group_members_and_hides_its_subject(
        tmp_path: Path, pbx: AsteriskInstance, ews: EwsSimulator) -> None:
    assert PBXSYNC.exists(), "the pbxsync console script is not installed next to the test's Python"
    (meeting,) = ews.org.meetings("alice@example.com")
    start = meeting.start.astimezone(UTC)
    metrics_port = port_for_config()  # the daemon binds it; this test scrapes it
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews, pbx, metrics_port), encoding="utf-8")
    log = tmp_path / "agent.log"

    agent_log = partial(log_tail, log)

    members: list[dict[str, str]] = []
    doc: list[dict[str, Any]] = []
    async with pbxsync_running(config, log, "--debug") as proc:  # --debug: every line pbxsync writes, at DEBUG
        async def everybody_in_the_room() -> bool:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"
            members[:] = await room_members(pbx, ROOM)
            return {extension_of(m["Channel"]) for m in members} == {"101", "102", "103"}

        await poll(everybody_in_the_room, start + timedelta(seconds=30),
                   lambda: f"not all in room {ROOM}: {members}\n{agent_log()}\n{pbx.log_tail(40)}")
        assert datetime.now(UTC) >= start

        async def everybody_answered() -> bool:
            code, out, err = await pbxsync(config, "conferences", "--json")
            assert code == 0, err
            doc[:] = json.loads(out)
            assert SECRET_SUBJECT not in out and "Contoso" not in out
            return len(doc) == 1 and all(p["outcome"] == "answered" for p in doc[0]["participants"])

        await poll(everybody_answered, datetime.now(UTC) + timedelta(seconds=15),
                   lambda: f"conferences --json: {json.dumps(doc, indent=1)}\n{agent_log()}")
        metrics = await asyncio.to_thread(scrape, metrics_port)
        code, table, _ = await pbxsync(config, "conferences")
        assert code == 0
    assert proc.returncode == 0, agent_log()

    # Both group members were called through the group and joined, with the host.
    (booking,) = doc
    assert (booking["subject"], booking["private"], booking["autocall"]) == (PRIVATE_SUBJECT, True, True)
    people = {p["extension"]: p for p in booking["participants"]}
    assert {ext: p["via_group"] for ext, p in people.items()} == {"101": None, "102": "team@example.com",
                                                                   "103": "team@example.com"}
    assert all(p["outcome"] == "answered" and p["autocall"]["attempts"] == 1 for p in people.values())
    assert booking["unmatched"] == [] and booking["room"] == ROOM
    assert all(m["Uniqueid"].startswith(f"pbxsync-{booking['id']}-") for m in members), members
    # The subject is in the synced store only: not in the listings, the DEBUG log, /metrics or the caller ID.
    text = log.read_text(encoding="utf-8")
    assert '"level": "debug"' in text  # the log really was written at DEBUG
    assert "ExpandDL" in text or "team@example.com" in text  # and it covers the group lookup
    for where, content in (("log", text), ("metrics", metrics), ("conferences", table)):
        assert SECRET_SUBJECT not in content and "Contoso" not in content, where
    assert "pbxsync_bookings" in metrics
    assert {m["CallerIDName"] for m in members} == {PRIVATE_SUBJECT}
    assert PRIVATE_SUBJECT in table
