"""Graph change notifications inside a real `pbxsync run` (the installed console script, as an admin runs
it) against the Graph simulator over HTTPS on loopback, with no timed pass at all (`interval_minutes = 0`):
a `PBX` meeting created in the simulator is booked within seconds, by the notified pass of its folder alone.

Both feeds that work on loopback (docs/exchange-online-graph.md, "Changes within seconds"):
- webhooks: `notification_url` on 127.0.0.1; the simulator POSTs each change there (validation handshake,
  clientState) and the agent syncs the folder;
- delta polling: no URL; the agent asks each folder's deltaLink every `poll_seconds` in `$batch` calls.

The waits are polls of the agent's own `pbxsync status` / `conferences --json` with a deadline
(tests/support/pbxsync_run.py), never a fixed sleep. The EWS counterpart is test_must_show_notifications.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import AttendeeRecord, MeetingRecord
from tests.support.notices import ALICE, BOB, organisation, users_toml
from tests.support.pbxsync_run import (
    conferences_json,
    log_tail,
    pbxsync_running,
    poll,
    service_status,
    without_listeners,
)
from tests.support.ports import port_for_config

HOOK = "/pbxsync/graph/notify"
POLL_SECONDS = 5  # the shortest the config allows
FOLDERS = 6  # three PBX users, contacts and calendar each


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphSimulator]:
    with GraphSimulator(organisation(), tls_dir=tmp_path / "tls") as sim:
        yield sim


def config_text(tmp_path: Path, sim: GraphSimulator, feed: str) -> str:
    if feed == "graph-webhook":
        port = port_for_config()  # the URL Graph dials is in the config before the agent binds it
        notifications = (f'notification_url = "http://127.0.0.1:{port}{HOOK}"\n'
                         f'notification_listen = "127.0.0.1:{port}"')
    else:
        notifications = f'notification_url = ""\npoll_seconds = {POLL_SECONDS}'
    return f"""
database = "{tmp_path / 'pbxsync.db'}"

[exchange]
backend = "graph"
tenant_id = "{sim.app.tenant_id}"
client_id = "{sim.app.client_id}"
client_secret = "{sim.app.client_secret}"
authority = "{sim.authority}"
graph_endpoint = "{sim.graph_endpoint}"
ca_file = "{sim.tls.ca_file}"
notifications = "auto"
{notifications}

[sync]
interval_minutes = 0
days_back = 1
days_ahead = 14

[pbx]
rooms = ["8090"]

{without_listeners(tmp_path)}
[log]
format = "json"

{users_toml()}"""


@pytest.mark.parametrize("feed", ["graph-webhook", "graph-polling"])
async def test_a_meeting_created_in_graph_is_booked_within_seconds_without_a_timed_pass(
        tmp_path: Path, graph: GraphSimulator, feed: str) -> None:
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, graph, feed), encoding="utf-8")
    log = tmp_path / "agent.log"
    agent_log = partial(log_tail, log)
    status: dict[str, Any] = {}
    doc: list[dict[str, Any]] = []

    async with pbxsync_running(config, log) as proc:
        async def feed_up() -> bool:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"
            sync = await service_status(config, "sync")
            status.update(sync or {})
            notified = ((sync or {}).get("data") or {}).get("notifications") or {}
            # every folder caught up once by the feed itself (no timer runs); webhooks: every folder subscribed
            subscribed = (feed == "graph-polling"
                          or notified.get("subscriptions_healthy") == notified.get("subscriptions_total") == FOLDERS)
            return (notified.get("mode") == feed and notified.get("passes", 0) > 0
                    and notified.get("pending_folders") == 0 and subscribed)

        await poll(feed_up, datetime.now(UTC) + timedelta(seconds=60), lambda: f"{status}\n{agent_log()}")
        # the three meetings of the organisation were booked by those first notified passes
        assert {b["uid"] for b in await conferences_json(config)} >= {"standup"}

        start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=14, minute=0, second=0, microsecond=0)
        graph.org.add_meeting(MeetingRecord(
            "", "", "created-now", "Created now", start, start + timedelta(minutes=30), "UTC", location="PBX",
            organizer_email=ALICE, organizer_name="Alice",
            attendees=(AttendeeRecord(BOB, "Bob", "required", "accept"),)))
        created = datetime.now(UTC)

        async def booked() -> bool:
            doc[:] = [b for b in await conferences_json(config) if b["uid"] == "created-now"]
            return bool(doc)

        # about a second (webhook) or one poll interval, measured and printed; no timed pass runs at all
        # (interval_minutes = 0), so only the feed can book it: the deadline is a liveness bound, not a timing
        # assertion, generous because each `pbxsync conferences` is a whole CLI start on a loaded CI machine
        await poll(booked, created + timedelta(seconds=60), lambda: f"{doc}\n{status}\n{agent_log()}")
        print(f"{feed}: booked {(datetime.now(UTC) - created).total_seconds():.2f} s after it was created")
        (booking,) = doc
        assert (booking["state"], booking["room"]) == ("scheduled", "8001")
        assert {p["extension"] for p in booking["participants"]} == {"101", "102"}

    assert proc.returncode == 0, agent_log()
    text = log.read_text(encoding="utf-8")
    assert '"msg": "stopped"' in text and "Traceback" not in text, agent_log()
    assert graph.app.client_secret not in text
    passes = [json.loads(line) for line in text.splitlines() if '"sync pass (' in line]
    assert passes and all(p.get("trigger") == "notify" for p in passes)  # no timed pass, ever
