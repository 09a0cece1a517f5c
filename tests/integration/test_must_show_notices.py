"""Issue 16's "Must show" for notices, as an admin runs pbxsync: the installed `pbxsync` console script
(`pbxsync sync --local`, three passes) against the EWS simulator (real exchangelib), the outbox read with
`pbxsync simulate outbox --json`.

- A meeting rejected because no room is free produces exactly one notice to its organizer after three
  passes; a meeting from an outside organizer produces none.
- A booking pbxsync cancels itself because its room was removed from `[pbx] rooms` produces one notice to
  its organizer, at the next pass after the admin's change (the meeting itself is unchanged); a booking
  whose room was removed while another pool room is free moves there and nobody is told anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.simulator.ews_server import EwsSimulator
from tests.support.notices import BOB, CAROL, GUEST, carol_meeting, ews_config, organisation
from tests.support.pbxsync_run import pbxsync


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation((carol_meeting(),))) as sim:
        yield sim


async def sync_pass(config: Path) -> None:
    code, out, err = await pbxsync(config, "sync", "--local")
    assert code == 0, out + err


async def outbox(ews: EwsSimulator) -> list[dict[str, Any]]:
    code, out, err = await pbxsync(Path("/nonexistent.toml"), "simulate", "outbox", "--url", ews.base_url, "--json")
    assert code == 0, err
    return list(json.loads(out))


async def test_one_notice_for_the_meeting_without_a_free_room_none_for_the_outside_organizer(
        ews: EwsSimulator, tmp_path: Path) -> None:
    config = ews_config(tmp_path, ews, rooms=[])  # Bob's clash wants Alice's room 8001; no other is free
    for _ in range(3):
        await sync_pass(config)
    sent = await outbox(ews)
    to_bob = [m for m in sent if m["to"] == [BOB]]
    assert len(to_bob) == 1, sent
    assert to_bob[0]["subject"] == 'No PBX conference for "Clash"'
    assert to_bob[0]["saved_copy"] is True  # SendAndSaveCopy: Bob's Sent Items hold it
    assert not [m for m in sent if GUEST in m["to"] or m["sender"] == GUEST]
    assert all(m["subject"] != 'No PBX conference for "From outside"' for m in sent)
    code, out, err = await pbxsync(config, "conferences", "--json")
    assert code == 0, err
    shown = {c["uid"]: c for c in json.loads(out)}
    assert [n["state"] for n in shown["clash"]["notices"]] == ["sent"]
    assert shown["external"]["notices"] == []


async def test_one_notice_when_pbxsync_cancels_a_booking_whose_room_was_removed(ews: EwsSimulator,
                                                                                tmp_path: Path) -> None:
    config = ews_config(tmp_path, ews, rooms=["8090"])
    await sync_pass(config)
    assert [m for m in await outbox(ews) if m["to"] == [CAROL]] == []  # booked in 8090: nothing to tell
    config = ews_config(tmp_path, ews, rooms=[])  # the admin takes 8090 out of the pool
    for _ in range(3):
        await sync_pass(config)
    to_carol = [m for m in await outbox(ews) if m["to"] == [CAROL]]
    assert len(to_carol) == 1, to_carol
    assert to_carol[0]["subject"] == 'PBX conference cancelled for "Review"'
    assert "No conference room is free at that time." in to_carol[0]["body"]
    review = await conference(config, "carol-review")
    assert (review["state"], review["room"]) == ("rejected", None)
    assert [n["state"] for n in review["notices"]] == ["sent"]


async def test_a_booking_whose_room_was_removed_moves_to_a_free_pool_room_without_a_notice(
        ews: EwsSimulator, tmp_path: Path) -> None:
    await sync_pass(ews_config(tmp_path, ews, rooms=["8090", "8091"]))
    assert (await conference(tmp_path / "pbxsync.toml", "carol-review"))["room"] == "8090"
    config = ews_config(tmp_path, ews, rooms=["8091"])  # the admin takes 8090 out of the pool
    await sync_pass(config)
    review = await conference(config, "carol-review")
    assert (review["state"], review["room"]) == ("scheduled", "8091")
    await sync_pass(config)
    assert [m for m in await outbox(ews) if m["to"] == [CAROL]] == []


async def conference(config: Path, uid: str) -> dict[str, Any]:
    code, out, err = await pbxsync(config, "conferences", "--json")
    assert code == 0, err
    return next(dict(c) for c in json.loads(out) if c["uid"] == uid)
