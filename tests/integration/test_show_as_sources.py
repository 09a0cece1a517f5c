"""Both sources read each calendar item's show-as (EWS LegacyFreeBusyStatus through exchangelib, Graph showAs)
from their simulators, messy values included, and the sync engine stores it for every item (issue 17)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.sync.config import Config, ExchangeConfig, SyncConfig, UserConfig
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.model import Sensitivity, ShowAs
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.store.calendar import load_occurrences
from pbxsync.sync.store.db import Store
from tests.support.graph import graph_config

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
START, END = datetime(2026, 3, 19, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC)
ALICE = "alice@example.com"
# uid -> (show-as the server sends, what pbxsync reads)
CASES = {
    "free": ("Free", ShowAs.FREE), "tentative": ("Tentative", ShowAs.TENTATIVE), "busy": ("Busy", ShowAs.BUSY),
    "oof": ("OOF", ShowAs.OOF), "elsewhere": ("WorkingElsewhere", ShowAs.WORKING_ELSEWHERE),
    "missing": ("", ShowAs.BUSY), "nodata": ("NoData", ShowAs.UNKNOWN), "bogus": ("Beschäftigt", ShowAs.UNKNOWN),
    "shouting": ("BUSY\u0000", ShowAs.UNKNOWN),
}


def organisation() -> Organisation:
    meetings = [{"uid": uid, "subject": f"Item {uid}", "organizer": {"email": ALICE}, "show_as": sent,
                 "start": f"2026-03-2{1 + i % 5}T{8 + i:02d}:00:00", "duration_minutes": 45, "timezone": "UTC"}
                for i, (uid, (sent, _)) in enumerate(CASES.items())]
    meetings.append({"uid": "private-oof", "subject": "Clinic appointment", "organizer": {"email": ALICE},
                     "sensitivity": "private", "show_as": "OOF", "all_day": True, "start": "2026-03-30T00:00:00",
                     "timezone": "Europe/Berlin"})
    return Organisation.from_dict({
        "domain": "example.com",
        "users": [{"email": ALICE, "name": "Alice Example", "password": "alice-pw"},
                  {"email": "svc-pbx@example.com", "name": "PBX service", "password": "svc-pw",
                   "can_impersonate": True}],
        "meetings": meetings}, source="show-as", now=NOW)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EwsSimulator, GraphSimulator]]:
    org = organisation()
    with EwsSimulator(org) as ews, GraphSimulator(org, tls_dir=tmp_path / "tls") as graph:
        yield ews, graph


def ews_source(ews: EwsSimulator) -> EwsSource:
    return EwsSource(ExchangeConfig(server=ews.ews_url, auth="basic", username="svc-pbx@example.com",
                                    password=Secret("svc-pw"), max_connections=2),
                     [UserConfig(extension="101", email=[ALICE])])


@pytest.fixture(params=["ews", "graph"])
async def source(request: pytest.FixtureRequest,
                 servers: tuple[EwsSimulator, GraphSimulator]) -> AsyncIterator[MailboxSource]:
    ews, graph = servers
    made: MailboxSource
    if request.param == "ews":
        made = ews_source(ews)
    else:
        made = GraphSource(graph_config(graph), SyncConfig(days_back=1, days_ahead=30), clock=lambda: NOW)
    yield made
    await made.close()


async def test_every_item_carries_its_show_as_messy_values_included(source: MailboxSource) -> None:
    window = await source.calendar_window(ALICE, START, END)
    found = {o.uid: o.show_as for o in window.occurrences}
    assert {uid: found[uid] for uid in CASES} == {uid: want for uid, (_, want) in CASES.items()}
    assert found["private-oof"] is ShowAs.OOF
    assert not window.skipped  # an odd show-as never costs the item


async def test_the_sync_engine_stores_show_as_for_every_item_not_only_pbx_meetings(
        store: Store, servers: tuple[EwsSimulator, GraphSimulator]) -> None:
    config = Config(exchange=ExchangeConfig(server=servers[0].ews_url), sync=SyncConfig(days_back=1, days_ahead=30),
                    users=[UserConfig(extension="101", email=[ALICE], sync_contacts=False)])
    source = ews_source(servers[0])
    try:
        summary = await SyncEngine(store, source, config).sync_all(NOW)
    finally:
        await source.close()
    assert summary.ok
    stored = {s.occurrence.uid: s.occurrence for s in await load_occurrences(store, mailbox=ALICE)}
    assert {uid: stored[uid].show_as for uid in CASES} == {uid: want for uid, (_, want) in CASES.items()}
    private = stored["private-oof"]
    assert (private.show_as, private.sensitivity, private.is_all_day) == (ShowAs.OOF, Sensitivity.PRIVATE, True)
    assert private.end - private.start == timedelta(days=1)
