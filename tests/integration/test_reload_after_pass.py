"""A reload reaches the steps after each sync pass without restarting the sync service (the sync service
reads the daemon's list of steps at each pass; plugin/daemon/sync_timers.py, wiring.build_specs).

The daemon runs in-process against the EWS simulator, its config read from a file that the test edits
and reloads as an admin would (`pbxsync reload` / SIGHUP).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.booking.planner import NO_DURATION
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.sync_timers import SyncService
from pbxsync.sync.config import load_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from tests.support.notices import BOB, DAY, ews_config, organisation
from tests.support.pbxsync_run import pbxsync


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


def daemon_config(tmp_path: Path, ews: EwsSimulator, notify: bool) -> Path:
    """The notices world's config (Bob's "Clash" finds no free room), timers off, no listeners but control."""
    path = ews_config(tmp_path, ews, rooms=[])
    text = path.read_text(encoding="utf-8")
    text = text.replace("notify_organizer = true", f"notify_organizer = {'true' if notify else 'false'}")
    text = text.replace("[sync]\n", "[sync]\ninterval_minutes = 0\n")
    path.write_text(text + "[agi]\nenabled = false\n[ldap]\nenabled = false\n", encoding="utf-8")
    return path


async def test_turning_notices_on_with_a_reload_sends_at_the_next_pass(
        tmp_path: Path, ews: EwsSimulator, daemons: list[Daemon]) -> None:
    path = daemon_config(tmp_path, ews, notify=False)
    daemon = Daemon(load_config(str(path)))
    await daemon.start()
    daemons.append(daemon)
    sync = daemon.supervisor.service("sync")
    assert isinstance(sync, SyncService)
    assert (await daemon.sync_now(None)).ok
    assert ews.outbox.as_json() == []  # notices are off: Bob's rejected "Clash" is not told

    daemon_config(tmp_path, ews, notify=True)
    assert await daemon.reload() is True
    assert daemon.supervisor.service("sync") is sync  # [meetings] is not the sync's: it keeps running
    assert (await daemon.sync_now(None)).ok
    to_bob = [m for m in ews.outbox.as_json() if m["to"] == [BOB]]
    assert [m["subject"] for m in to_bob] == ['No PBX conference for "Clash"']

    daemon_config(tmp_path, ews, notify=False)  # and off again: nothing more is planned or sent
    assert await daemon.reload() is True
    start = DAY + timedelta(minutes=15)  # a new reason would be a new notice: "Clash" loses its duration
    await asyncio.to_thread(ews.org.move_meeting, "clash", start, start)
    assert (await daemon.sync_now(None)).ok
    code, out, err = await pbxsync(path, "conferences", "--json")
    assert code == 0, err
    clash = next(c for c in json.loads(out) if c["uid"] == "clash")
    assert clash["reason"] == NO_DURATION  # the pass did see the change
    assert len(ews.outbox.as_json()) == 1
