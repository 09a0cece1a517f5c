"""Issue 16's "Must show" for the write-back, end to end: the real `pbxsync run` daemon with
`[meetings] write_back = true` against the EWS simulator (real exchangelib) and against the Graph
simulator. A `PBX AUTOCALL` meeting organized by alice gets the "Join by phone" block in its body, with
the dial-in number, its room and the PIN `pbxsync conferences --json` shows, read back through the
simulator's own protocol (EWS GetItem through exchangelib, Graph GET /events/{id}); the rest of the body
is untouched, and the daemon's further passes do not write again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.writeback.render import find_block
from pbxsync.sync.config import load_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_server import GraphSimulator, config_snippet
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.factory import make_source
from pbxsync.sync.sources.writer import ItemBody, writer_for
from tests.support.pbxsync_run import conferences_json, log_tail, pbxsync_running, poll, without_listeners
from tests.support.write_back import AGENDA, ALICE, config_text, ews_exchange, organisation

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = (NOW + timedelta(days=1)).replace(hour=9, minute=0)


def agent_config(tmp_path: Path, exchange: str) -> Path:
    path = tmp_path / "pbxsync.toml"
    path.write_text(config_text(tmp_path / "pbxsync.db", exchange, sync="interval_minutes = 1",
                                extra=without_listeners(tmp_path)))
    return path


@contextmanager
def simulated(backend: str, org: Organisation, tmp_path: Path) -> Iterator[str]:
    """The simulator for `backend`, and the [exchange] section pointing at it."""
    if backend == "ews":
        with EwsSimulator(org) as ews:
            yield ews_exchange(ews.ews_url)
    else:
        with GraphSimulator(org, tls_dir=tmp_path / "tls") as graph:
            yield config_snippet(graph)


async def read_back(config_path: Path, org: Organisation) -> ItemBody:
    """The organizer's meeting body, through the simulator's own protocol."""
    config = load_config(str(config_path))
    source = make_source(config)
    try:
        writer = writer_for(source)
        assert writer is not None and (config.exchange.backend == "graph") != isinstance(source, EwsSource)
        copy = next(m for box, m in org.copies("standup") if box == ALICE)
        [body] = await writer.read_bodies(ALICE, [copy.item_id])
        assert isinstance(body, ItemBody), body
        return body
    finally:
        await source.close()


@pytest.mark.parametrize("backend", ["ews", "graph"])
async def test_a_pbx_meeting_gets_the_join_by_phone_block_with_room_and_pin(backend: str, tmp_path: Path) -> None:
    org = organisation(start=START, now=NOW)
    with simulated(backend, org, tmp_path) as exchange:
        config = agent_config(tmp_path, exchange)
        log = tmp_path / "agent.log"
        async with pbxsync_running(config, log):
            async def written() -> bool:
                return bool(org.writes.log(ALICE))

            await poll(written, datetime.now(UTC) + timedelta(seconds=60), lambda: log_tail(log))
            [standup] = [c for c in await conferences_json(config) if c["uid"] == "standup"]
            body = await read_back(config, org)
            # Our own change comes back (notification or timer): a pass syncs alice's updated meeting and
            # runs its after-sync steps (the pass is logged after them), and writes nothing again.
            async def own_change_came_back() -> bool:
                text = log.read_text(encoding="utf-8", errors="replace")
                seen = text.find(f"calendar of {ALICE}: 0 added, 1 updated")
                return seen >= 0 and "sync pass" in text[seen:]

            await poll(own_change_came_back, datetime.now(UTC) + timedelta(seconds=90), lambda: log_tail(log))
        assert standup["room"] == "8001" and standup["pin"]
        assert standup["write_back"]["state"] == "written"
        content = body.content
        assert "Dial-in: +49 30 1234567" in content
        assert "Then key in the room number 8001 followed by #" in content
        assert f"PIN: {standup['pin']}" in content
        assert "The PBX will call you at the start." in content
        found = find_block(content, True)
        assert found is not None and content[:found[0]] + content[found[1]:] == AGENDA
        assert len(org.writes.log(ALICE)) == 1, log_tail(log)
