"""Notices to organizers over the simulators: real exchangelib (EWS CreateItem SendAndSaveCopy) and the Graph
client (sendMail), the step after each pass, the outbox over the simulators' control interface."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.check.notices import check_notices
from pbxsync.plugin.notices.step import NoticeStep
from pbxsync.sync.config import Config, load_config
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.errors import SourceError
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_auth import AppRegistration
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import Fault
from pbxsync.sync.simulator.outbox_client import fetch_outbox
from pbxsync.sync.sources.factory import make_source
from pbxsync.sync.sources.mail import OutgoingMail, mail_sender_for
from pbxsync.sync.store.db import open_store
from tests.support.notices import ALICE, BOB, organisation
from tests.support.notices import ews_config as write_ews_config
from tests.support.notices import graph_config_text as write_graph_config


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphSimulator]:
    with GraphSimulator(organisation(), tls_dir=tmp_path / "tls") as sim:
        yield sim


async def passes(config: Config, count: int) -> None:
    """`count` sync passes, each followed by the bookings and the notices step, as the daemon runs them."""
    store = await open_store(config.database)
    source = make_source(config)
    step = NoticeStep(config)
    try:
        for _ in range(count):
            now = datetime.now(UTC)
            await SyncEngine(store, source, config).sync_all(now)
            await update_bookings(store, config, now, groups=source)
            await step.run(store, now, mail_sender_for(source))
    finally:
        await source.close()
        await store.close()


async def test_exchangelib_sends_as_the_impersonated_organizer_and_keeps_a_copy(ews: EwsSimulator,
                                                                                 tmp_path: Path) -> None:
    config = load_config(str(write_ews_config(tmp_path, ews, [])))
    source = make_source(config)
    sender = mail_sender_for(source)
    assert sender is not None
    try:
        await sender.send_mail(OutgoingMail(BOB, BOB, "Subject with <xml> & $dollar", "line 1\nline 2 é"))
    finally:
        await source.close()
    [mail] = ews.outbox.messages()
    assert (mail.via, mail.sender, mail.to, mail.saved_copy) == ("ews", BOB, (BOB,), True)
    assert mail.subject == "Subject with <xml> & $dollar"
    assert mail.body == "line 1\nline 2 é"
    assert ews.org.counters.get("CreateItem") == 1


async def test_a_refused_send_is_a_source_error(ews: EwsSimulator, tmp_path: Path) -> None:
    config = load_config(str(write_ews_config(tmp_path, ews, [])))
    ews.org.inject_fault(Fault("access_denied"), operation="CreateItem", mailbox=BOB)
    source = make_source(config)
    sender = mail_sender_for(source)
    assert sender is not None
    try:
        with pytest.raises(SourceError):
            await sender.send_mail(OutgoingMail(BOB, BOB, "s", "b"))
    finally:
        await source.close()
    assert ews.outbox.messages() == []


async def test_notices_over_ews_once_for_the_organizer_who_is_a_pbx_user(ews: EwsSimulator, tmp_path: Path) -> None:
    config = load_config(str(write_ews_config(tmp_path, ews, [])))
    await passes(config, 3)
    [mail] = ews.outbox.messages()
    assert mail.to == (BOB,) and mail.sender == BOB
    assert mail.subject == 'No PBX conference for "Clash"'
    assert "No conference room is free at that time." in mail.body
    assert "Standup" not in mail.body  # the holder of the room is not Bob's business
    assert ews.outbox.to(ALICE) == []  # the guest's meeting is rejected, Alice organized nothing rejected
    listed = fetch_outbox(ews.base_url)
    assert [m["to"] for m in listed] == [[BOB]]


async def test_notices_over_graph_send_mail(graph: GraphSimulator, tmp_path: Path) -> None:
    config = load_config(str(write_graph_config(tmp_path, graph, [])))
    await passes(config, 3)
    [mail] = graph.outbox.messages()
    assert (mail.via, mail.sender, mail.to, mail.saved_copy) == ("graph", BOB, (BOB,), True)
    assert mail.subject == 'No PBX conference for "Clash"'
    assert [m["subject"] for m in fetch_outbox(graph.base_url, graph.tls.ca_file)] == [mail.subject]


async def test_a_failed_send_is_retried_later_and_then_sent_once(ews: EwsSimulator, tmp_path: Path) -> None:
    config = load_config(str(write_ews_config(tmp_path, ews, [])))
    ews.org.inject_fault(Fault("server_busy", back_off_ms=120_000), operation="CreateItem", mailbox=BOB)
    await passes(config, 1)
    assert ews.outbox.messages() == []
    store = await open_store(config.database)
    try:
        async with store.conn.execute("SELECT state, attempts, last_error FROM organizer_notices") as cur:
            [(state, attempts, error)] = list(await cur.fetchall())
        assert (state, attempts) == ("pending", 1) and "busy" in error
        # the back-off has not passed: the next pass leaves it; once it has, the notice goes, once
        await store.conn.execute("UPDATE organizer_notices SET next_attempt_at = '2000-01-01T00:00:00Z'")
        await store.conn.commit()
    finally:
        await store.close()
    await passes(config, 2)
    assert [m.to for m in ews.outbox.messages()] == [(BOB,)]


async def test_check_reads_mail_send_from_the_graph_token(tmp_path: Path) -> None:
    for roles, outcome in ((("Calendars.Read", "Contacts.Read", "Mail.Send"), "PASS"),
                           (("Calendars.Read", "Contacts.Read"), "FAIL")):
        with GraphSimulator(organisation(), AppRegistration(roles=roles), tls_dir=tmp_path / "tls") as sim:
            config = load_config(str(write_graph_config(tmp_path, sim, [])))
            [templates, mail_send] = await check_notices(config, make_source)
        assert templates.outcome.value == "PASS"
        assert (mail_send.name, mail_send.outcome.value) == ("notices: Graph Mail.Send", outcome)
        if outcome == "FAIL":
            assert "Mail.Send" in mail_send.detail and "application access policy" in mail_send.fix


async def test_without_mail_send_graph_refuses_and_the_notice_waits(tmp_path: Path) -> None:
    app = AppRegistration(roles=("Calendars.Read", "Contacts.Read"))
    with GraphSimulator(organisation(), app, tls_dir=tmp_path / "tls") as sim:
        config = load_config(str(write_graph_config(tmp_path, sim, [])))
        await passes(config, 1)
        assert sim.outbox.messages() == []
    store = await open_store(config.database)
    try:
        async with store.conn.execute("SELECT state, last_error FROM organizer_notices") as cur:
            [(state, error)] = list(await cur.fetchall())
    finally:
        await store.close()
    assert state == "pending" and "denied" in error


async def test_check_over_ews_finds_the_sending_mailbox(ews: EwsSimulator, tmp_path: Path) -> None:
    path = write_ews_config(tmp_path, ews, [])
    config = load_config(str(path))
    [_, organizer] = await check_notices(config, make_source)
    assert organizer.outcome.value == "PASS" and "impersonation" in organizer.detail
    config = replace(config, meetings=replace(config.meetings, notices_from="svc-pbx@example.com"))
    [_, service] = await check_notices(config, make_source)
    assert service.outcome.value == "PASS", service.detail
    ews.org.inject_fault(Fault("impersonation_denied"), operation="GetFolder", mailbox="svc-pbx@example.com",
                         times=5)
    [_, denied] = await check_notices(config, make_source)
    assert denied.outcome.value == "FAIL" and "ApplicationImpersonation" in denied.fix
