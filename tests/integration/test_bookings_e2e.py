"""Issue 3 "must show": Exchange simulator -> EwsSource (exchangelib) -> sync engine -> reconcile ->
`pbxsync conferences --json` gives exactly the bookings, rejections and unmatched lists the rules say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pbxsync.plugin.booking import planner as rules
from pbxsync.plugin.booking.reconcile import reconcile_bookings
from pbxsync.plugin.cli import main
from pbxsync.plugin.directory import load_directory
from pbxsync.sync.config import Config, load_config
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Fault, Organisation
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.store.db import open_store

ALICE, BOB, CAROL, DAVE = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
DAY = (NOW + timedelta(days=2)).replace(hour=9, minute=0)


def hhmm(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def organisation() -> Organisation:
    def user(email: str, **extra: object) -> dict[str, object]:
        return {"email": email, "name": email.partition("@")[0].title(), "password": "pw", **extra}

    return Organisation.from_dict({
        "domain": "example.com",
        "users": [user(ALICE), user(BOB), user(CAROL), user(DAVE),
                  {**user("svc-pbx@example.com"), "password": "svc-pw", "can_impersonate": True}],
        "meetings": [
            {"uid": "standup", "subject": "Standup", "location": "Room 4; PBX AUTOCALL",
             "organizer": {"email": ALICE}, "start": hhmm(DAY), "duration_minutes": 30,
             "attendees": [{"email": BOB, "response": "accept"},
                           {"email": CAROL, "kind": "optional", "response": "decline"},
                           {"email": "guest@partner.org", "response": "noresponse"},
                           {"email": "room4@example.com", "kind": "resource", "response": "accept"}]},
            {"uid": "clash", "subject": "Clash", "location": "pbx", "organizer": {"email": CAROL},
             "start": hhmm(DAY + timedelta(minutes=15)), "duration_minutes": 60,
             "attendees": [{"email": ALICE, "response": "accept"}]},
            {"uid": "external", "subject": "From outside", "location": "PBX", "organizer": {"email": DAVE},
             "start": hhmm(DAY + timedelta(hours=3)), "attendees": [{"email": ALICE, "response": "accept"}]},
            {"uid": "teams", "subject": "Not ours", "location": "Teams", "organizer": {"email": ALICE},
             "start": hhmm(DAY + timedelta(hours=4))},
            {"uid": "allday", "subject": "Offsite", "location": "PBX", "organizer": {"email": ALICE},
             "start": (DAY + timedelta(days=1)).strftime("%Y-%m-%d"), "all_day": True},
            {"uid": "series", "subject": "Daily", "location": "PBX", "organizer": {"email": BOB},
             "start": hhmm(DAY + timedelta(hours=6)), "duration_minutes": 15,
             "recurrence": {"pattern": "daily", "count": 3}},
        ],
    }, now=NOW)


@pytest.fixture
def org() -> Organisation:
    return organisation()


@pytest.fixture
def sim(org: Organisation) -> Iterator[EwsSimulator]:
    with EwsSimulator(org) as server:
        yield server


def write_config(tmp_path: Path, sim: EwsSimulator) -> Path:
    path = tmp_path / "pbxsync.toml"
    path.write_text(f"""
database = "pbxsync.db"
[exchange]
server = "{sim.ews_url}"
auth = "basic"
username = "svc-pbx@example.com"
password = "svc-pw"
[sync]
days_back = 1
days_ahead = 14
[pbx]
rooms = ["8004"]
[[users]]
extension = "101"
email = "{ALICE}"
name = "Alice"
room = "8001"
[[users]]
extension = "102"
email = "{BOB}"
name = "Bob"
room = "8002"
[[users]]
extension = "103"
email = "{CAROL}"
name = "Carol"
room = "8001"
""")
    return path


async def sync_and_reconcile(config: Config, now: datetime) -> None:
    store = await open_store(config.database)
    source = EwsSource(config.exchange, config.users, config.sync.default_region)
    try:
        await SyncEngine(store, source, config).sync_all(now)
        await reconcile_bookings(store, await load_directory(store, config), config, now)
    finally:
        await source.close()
        await store.close()


def conferences(config_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict[str, Any]]:
    assert main(["--config", str(config_path), "conferences", "--json", *extra]) == 0
    shown = json.loads(capsys.readouterr().out)
    return {f'{c["uid"]}#{c["start"][:16]}': c for c in shown}


def test_meetings_become_the_bookings_the_rules_say(sim: EwsSimulator, org: Organisation, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config_path = write_config(tmp_path, sim)
    config = load_config(str(config_path))
    asyncio.run(sync_and_reconcile(config, NOW))
    shown = conferences(config_path, capsys)
    by_uid: dict[str, list[dict[str, Any]]] = {}
    for c in shown.values():
        by_uid.setdefault(c["uid"], []).append(c)
    assert sorted(by_uid) == ["allday", "clash", "external", "series", "standup"]  # not "teams"

    [standup] = by_uid["standup"]
    assert (standup["room"], standup["autocall"], standup["state"], standup["reason"]) == (
        "8001", True, "scheduled", None)
    assert standup["organizer"] == {"email": ALICE, "extension": "101"}
    assert [(p["extension"], p["response"], p["call"]) for p in standup["participants"]] == [
        ("101", "organizer", True), ("102", "accept", True), ("103", "decline", False)]
    assert standup["unmatched"] == ["guest@partner.org"]

    [clash] = by_uid["clash"]  # same time, same organizer room: the pool room
    assert (clash["room"], clash["state"]) == ("8004", "scheduled")
    [external] = by_uid["external"]
    assert (external["state"], external["reason"], external["room"]) == (
        "rejected", f"the organizer {DAVE} is not a PBX user", None)
    [allday] = by_uid["allday"]
    assert (allday["state"], allday["reason"]) == ("rejected", rules.ALL_DAY)
    series = sorted(by_uid["series"], key=lambda c: c["start"])
    assert [c["start"] for c in series] == [
        (DAY + timedelta(hours=6, days=n)).isoformat() for n in range(3)]
    assert {c["room"] for c in series} == {"8002"} and len({c["id"] for c in series}) == 3

    # Changes in Exchange: move the standup, cancel the clash, Bob deletes his standup copy.
    org.move_meeting("standup", DAY + timedelta(hours=2), DAY + timedelta(hours=2, minutes=30))
    org.cancel_meeting("clash")
    bob_copy = next(m for box, m in org.copies("standup") if box == BOB)
    org.delete_meeting(BOB, bob_copy.item_id)
    asyncio.run(sync_and_reconcile(config, NOW + timedelta(minutes=5)))
    after = {c["uid"]: c for c in conferences(config_path, capsys, "--all").values() if c["uid"] != "series"}
    assert after["standup"]["id"] == standup["id"]
    assert after["standup"]["start"] == (DAY + timedelta(hours=2)).isoformat()
    assert [(p["extension"], p["response"], p["call"]) for p in after["standup"]["participants"]] == [
        ("101", "organizer", True), ("102", "deleted", False), ("103", "decline", False)]
    assert (after["clash"]["state"], after["clash"]["reason"]) == ("cancelled", rules.CANCELLED_IN_EXCHANGE)
    assert "clash" not in {c["uid"] for c in conferences(config_path, capsys).values()}

    # Bob (the series organizer) deletes it, but Bob's sync fails: nothing may change.
    master = next(m for box, m in org.copies("series") if box == BOB)
    org.delete_meeting(BOB, master.item_id)
    org.inject_fault(Fault("server_busy", back_off_ms=600_000), mailbox=BOB, times=-1)
    asyncio.run(sync_and_reconcile(config, NOW + timedelta(minutes=10)))
    still = [c for c in conferences(config_path, capsys).values() if c["uid"] == "series"]
    assert [c["state"] for c in still] == ["scheduled"] * 3
    org.clear_faults()
    asyncio.run(sync_and_reconcile(config, NOW + timedelta(minutes=15)))
    gone = [c for c in conferences(config_path, capsys, "--all").values() if c["uid"] == "series"]
    assert [(c["state"], c["reason"]) for c in gone] == [("cancelled", rules.ORGANIZER_DELETED)] * 3
