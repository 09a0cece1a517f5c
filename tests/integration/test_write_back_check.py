"""`pbxsync check` with `[meetings] write_back` on: the permission lines (issue 16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pbxsync.plugin.check.writeback import check_write_back
from pbxsync.plugin.writeback.store import ReadOnlyMailbox, save_outcomes
from pbxsync.sync.preflight import Outcome
from pbxsync.sync.simulator.graph_auth import AppRegistration
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.sources.factory import make_source
from pbxsync.sync.store.db import open_store
from tests.support.graph import graph_config
from tests.support.write_back import ALICE, config_for, organisation

NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def test_graph_passes_with_calendars_readwrite_and_fails_without(tmp_path: Path) -> None:
    for roles, outcome in ((("Calendars.ReadWrite",), Outcome.PASS), (("Calendars.Read",), Outcome.FAIL)):
        app = AppRegistration(roles=roles)
        with GraphSimulator(organisation(), app, tls_dir=tmp_path / "tls") as graph:
            config = replace(config_for(tmp_path / "db.sqlite"), exchange=graph_config(graph))
            [result] = await check_write_back(config, make_source)
        assert result.outcome is outcome, result.line()
        if outcome is Outcome.FAIL:
            assert "Calendars.ReadWrite" in result.detail and "application access policy" in result.fix


async def test_graph_warns_that_attendees_are_always_notified(tmp_path: Path) -> None:
    with GraphSimulator(organisation(), tls_dir=tmp_path / "tls") as graph:
        config = replace(config_for(tmp_path / "db.sqlite"), exchange=graph_config(graph))
        quiet = replace(config, meetings=replace(config.meetings, notify_attendees=False))
        _, warning = await check_write_back(quiet, make_source)
    assert warning.outcome is Outcome.WARN and "notify_attendees" in warning.line()


async def test_nothing_is_checked_with_write_back_off(tmp_path: Path) -> None:
    config = config_for(tmp_path / "db.sqlite")
    off = replace(config, meetings=replace(config.meetings, write_back=False))
    assert await check_write_back(off, make_source) == []


async def test_ews_impersonation_passes_and_a_read_only_mailbox_fails(tmp_path: Path) -> None:
    config = config_for(tmp_path / "db.sqlite")
    store = await open_store(config.database)
    await save_outcomes(store, [], NOW, [ReadOnlyMailbox(ALICE, NOW, NOW + timedelta(hours=6), "ErrorAccessDenied")])
    await store.close()
    impersonation, alice = await check_write_back(config, make_source)
    assert impersonation.outcome is Outcome.PASS and "ApplicationImpersonation" in impersonation.detail
    assert alice.outcome is Outcome.FAIL and ALICE in alice.name and "ErrorAccessDenied" in alice.detail
