"""GraphSource's own bookkeeping over a scripted Graph (no HTTP): every contact folder, a vanished folder,
foreign or stale sync states, and 410 Gone in the middle of an incremental calendar round."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from pbxsync.sync.config import ExchangeConfig, SyncConfig
from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.plan import sync_window
from pbxsync.sync.secrets import Secret
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.graph_client import DeltaGoneError

BASE = "https://graph.example/v1.0"
BOX = "alice@example.com"
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)

Handler = Callable[[str], dict[str, Any]]


class ScriptedGraph:
    """Stands in for GraphClient.get_json: answers by URL prefix, records every URL asked."""

    def __init__(self, routes: dict[str, Handler | dict[str, Any]]) -> None:
        self.routes = routes
        self.asked: list[str] = []

    async def __call__(self, mailbox: str, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        self.asked.append(url)
        for prefix in sorted(self.routes, key=len, reverse=True):
            if url.startswith(BASE + prefix):
                route = self.routes[prefix]
                return route(url) if callable(route) else route
        raise AssertionError(f"unexpected request {url}")


def contact(item_id: str, name: str) -> dict[str, Any]:
    return {"id": item_id, "changeKey": "ck-" + item_id, "displayName": name, "businessPhones": ["030 1234567"]}


def delta(rows: list[dict[str, Any]], token: str) -> dict[str, Any]:
    return {"value": rows, "@odata.deltaLink": f"{BASE}/users/{BOX}/x/delta?$deltatoken={token}"}


def source_with(graph: ScriptedGraph) -> GraphSource:
    exchange = ExchangeConfig(backend="graph", tenant_id="t", client_id="c", client_secret=Secret("s"),
                              graph_endpoint=BASE)
    source = GraphSource(exchange, SyncConfig(), clock=lambda: NOW)
    source.client.get_json = graph  # type: ignore[method-assign]
    return source


async def test_every_contact_folder_and_a_vanished_one() -> None:
    folders = {"value": [{"id": "F1", "displayName": "Suppliers"}]}
    graph = ScriptedGraph({
        f"/users/{BOX}/contactFolders?": folders,
        f"/users/{BOX}/contactFolders/F1/childFolders": {"value": [{"id": "F2", "displayName": "Berlin"}]},
        f"/users/{BOX}/contactFolders/F2/childFolders": {"value": []},
        f"/users/{BOX}/contacts/delta": delta([contact("C0", "Default Person")], "d0"),
        f"/users/{BOX}/contactFolders/F1/contacts/delta": delta([contact("C1", "Supplier")], "d1"),
        f"/users/{BOX}/contactFolders/F2/contacts/delta": delta([contact("C2", "Berliner")], "d2"),
        f"/users/{BOX}/x/delta": delta([], "again"),
    })
    source = source_with(graph)
    first = await source.sync_contacts(BOX, "")
    assert {c.item_id for c in first.upserts} == {"C0", "C1", "C2"} and first.deleted_item_ids == ()
    graph.routes[f"/users/{BOX}/contactFolders/F1/childFolders"] = {"value": []}  # Berlin folder deleted
    second = await source.sync_contacts(BOX, first.sync_state)
    assert second.upserts == () and second.deleted_item_ids == ("C2",)
    await source.close()


async def test_foreign_or_corrupt_state_starts_over() -> None:
    graph = ScriptedGraph({f"/users/{BOX}/contactFolders?": {"value": []},
                           f"/users/{BOX}/contacts/delta": delta([contact("C0", "Default Person")], "d0")})
    source = source_with(graph)
    for state in ("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt", '{"v": 1, "kind": "graph-contacts", "folders": 7}', "{"):
        changes = await source.sync_contacts(BOX, state)
        assert [c.item_id for c in changes.upserts] == ["C0"]
    await source.close()


async def test_stored_link_to_another_host_is_not_followed() -> None:
    graph = ScriptedGraph({f"/users/{BOX}/contactFolders?": {"value": []}})
    source = source_with(graph)
    state = ('{"v":1,"kind":"graph-contacts","folders":{"":{"delta":"https://evil.example/v1.0/steal",'
             '"ids":[]}}}')
    with pytest.raises(SourceDataError, match="another host"):
        await source.sync_contacts(BOX, state)
    assert not any("evil" in url for url in graph.asked)
    await source.close()


def event(item_id: str, start: str) -> dict[str, Any]:
    return {"id": item_id, "changeKey": "k", "iCalUId": "uid-" + item_id, "type": "singleInstance",
            "subject": "S", "start": {"dateTime": start, "timeZone": "UTC"},
            "end": {"dateTime": start.replace("T09", "T10"), "timeZone": "UTC"}}


async def test_gone_during_incremental_round_is_a_clean_full_round() -> None:
    calendar = f"/users/{BOX}/calendarView/delta"
    graph = ScriptedGraph({
        calendar: delta([event("E1", "2026-03-21T09:00:00"), event("E2", "2026-03-22T09:00:00")], "c1"),
    })
    source = source_with(graph)
    first = await source.sync_calendar(BOX, "")
    assert set(first.changed_item_ids) == {"E1", "E2"}

    def gone_then_full(url: str) -> dict[str, Any]:
        if "$deltatoken" in url:
            raise DeltaGoneError("Graph: delta state is gone (SyncStateNotFound)")
        return delta([event("E2", "2026-03-22T09:00:00")], "c2")

    graph.routes[calendar] = gone_then_full
    graph.routes[f"/users/{BOX}/x/delta"] = gone_then_full
    second = await source.sync_calendar(BOX, first.sync_state)
    assert second.deleted_item_ids == ("E1",) and second.changed_item_ids == ("E2",)
    window = await source.calendar_window(BOX, *sync_window(NOW, 1, 30))  # the default [sync] window
    assert [o.item_id for o in window.occurrences] == ["E2"]
    await source.close()
