"""GraphSource (msal + requests) against the Graph simulator over HTTPS on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.config import SyncConfig
from pbxsync.sync.errors import SourceAccessError, SourceAuthError, SourceBusyError, SourceDataError
from pbxsync.sync.model import AttendeeKind, ResponseType
from pbxsync.sync.secrets import Secret
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.graph_tls import make_app_certificate
from pbxsync.sync.simulator.mailboxes import Fault, Organisation
from pbxsync.sync.sources.graph import GraphSource
from tests.support.graph import MAILBOXES, MAILBOXES_NOW, graph_config
from tests.support.source_scenarios import contacts_create_update_delete

DATA, NOW = MAILBOXES, MAILBOXES_NOW
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
MARCH, MAY = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def org() -> Organisation:
    return Organisation.load_file(DATA, now=NOW)


@pytest.fixture
def sim(org: Organisation, tmp_path: Path) -> Iterator[GraphSimulator]:
    with GraphSimulator(org, tls_dir=tmp_path / "tls") as server:
        yield server


class Sleeps:
    """An injected sleep: records what was asked and returns at once (tests never wait)."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def make_source(sim: GraphSimulator, page_size: int = 100, **overrides: Any) -> tuple[GraphSource, Sleeps]:
    sleeps = Sleeps()
    source = GraphSource(graph_config(sim, **overrides), SyncConfig(days_back=1, days_ahead=30),
                         clock=lambda: NOW, sleep=sleeps, page_size=page_size, max_retry_wait_seconds=30)
    return source, sleeps


async def test_token_is_fetched_once_and_cached(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    await source.sync_contacts(ALICE, "")
    await source.sync_contacts(BOB, "")
    await source.calendar_window(ALICE, MARCH, MAY)
    assert org.counters.get("token") == 1
    assert org.counters.get("openid-configuration") == 1
    await source.close()


async def test_certificate_credential_gets_a_token(sim: GraphSimulator, org: Organisation, tmp_path: Path) -> None:
    cert_file, key_file = make_app_certificate(tmp_path / "app")
    sim.app.certificate_pem = Path(cert_file).read_bytes()
    sim.app.client_secret = ""
    source, _ = make_source(sim, client_secret=Secret(""), certificate_file=cert_file, private_key_file=key_file)
    changes = await source.sync_contacts(ALICE, "")
    assert {c.display_name for c in changes.upserts} == {"Zoë Müller", "Hans Hotline"}
    await source.close()


async def test_contacts_delta_rounds(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim, page_size=1)  # one contact per page: the nextLink chain is followed
    await contacts_create_update_delete(source, org)
    await source.close()


async def test_calendar_window_maps_series_exceptions_and_responses(sim: GraphSimulator) -> None:
    source, _ = make_source(sim, page_size=3)
    window = await source.calendar_window(ALICE, MARCH, MAY)
    standup = [o for o in window.occurrences if o.uid == "weekly-standup"]
    # 8 occurrences, one cancelled (left out), one moved to 11:00 Berlin (10:00 UTC)
    assert len(standup) == 7
    moved = next(o for o in standup if o.recurrence_id == datetime(2026, 3, 26, 8, tzinfo=UTC))
    assert moved.start == datetime(2026, 3, 26, 10, tzinfo=UTC)
    assert all(o.series_item_id and o.series_item_id == standup[0].series_item_id for o in standup)
    assert moved.location == "PBX AUTOCALL" and moved.timezone == "W. Europe Standard Time"
    assert moved.organizer_email == ALICE
    by_mail = {a.email: a for a in moved.attendees}
    assert by_mail[BOB].response is ResponseType.ACCEPT
    assert by_mail[CAROL].kind is AttendeeKind.OPTIONAL and by_mail[CAROL].response is ResponseType.DECLINE
    assert by_mail["room1@example.com"].kind is AttendeeKind.RESOURCE
    offsite = next(o for o in window.occurrences if o.uid == "offsite")
    assert offsite.is_all_day and offsite.start == datetime(2026, 3, 24, 23, tzinfo=UTC)
    assert offsite.end == datetime(2026, 3, 25, 23, tzinfo=UTC)
    ny = [o for o in window.occurrences if o.uid == "ny-call"]
    assert [o.start for o in ny] == [datetime(2026, 3, 6, 15, tzinfo=UTC),  # EST, then EDT from 8 March
                                    datetime(2026, 3, 13, 14, tzinfo=UTC), datetime(2026, 3, 20, 14, tzinfo=UTC)]
    await source.close()


async def test_calendar_delta_reports_moves_and_removals(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    first = await source.sync_calendar(BOB, "")
    window = await source.calendar_window(BOB, *_window())
    assert set(first.changed_item_ids) == {o.item_id for o in window.occurrences}
    requests_before = org.counters.get("calendarView.delta", BOB)
    quiet = await source.sync_calendar(BOB, first.sync_state)
    assert not quiet.has_changes
    assert org.counters.get("calendarView.delta", BOB) == requests_before + 1  # one request when nothing changed
    standup = sorted((o for o in window.occurrences if o.uid == "weekly-standup"), key=lambda o: o.start)
    org.cancel_occurrence("weekly-standup", standup[0].recurrence_id or standup[0].start)
    org.cancel_meeting("ny-call")  # Bob organises it: his copy is deleted
    changes = await source.sync_calendar(BOB, quiet.sync_state)
    ny_ids = {o.item_id for o in window.occurrences if o.uid == "ny-call"}
    assert set(changes.deleted_item_ids) == ny_ids | {standup[0].item_id}
    after = await source.calendar_window(BOB, *_window())
    assert {o.item_id for o in after.occurrences} == {o.item_id for o in window.occurrences} - set(
        changes.deleted_item_ids)
    await source.close()


def _window() -> tuple[datetime, datetime]:
    midnight = NOW.replace(hour=0)
    return midnight - timedelta(days=1), midnight + timedelta(days=31)


async def test_sync_state_survives_a_restart(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    first = await source.sync_calendar(ALICE, "")
    await source.close()
    restarted, _ = make_source(sim)
    org.update_meeting("offsite", subject="Offsite (moved room)")
    changes = await restarted.sync_calendar(ALICE, first.sync_state)
    offsite_ids = [i for i in changes.changed_item_ids]
    assert len(offsite_ids) == 1 and changes.deleted_item_ids == ()
    window = await restarted.calendar_window(ALICE, *_window())
    assert next(o for o in window.occurrences if o.uid == "offsite").subject == "Offsite (moved room)"
    await restarted.close()


async def test_retry_after_is_honoured_per_mailbox(sim: GraphSimulator, org: Organisation) -> None:
    source, sleeps = make_source(sim)
    org.inject_fault(Fault("server_busy", back_off_ms=7000), operation="contacts.delta", mailbox=ALICE, times=2)
    changes = await source.sync_contacts(ALICE, "")
    assert len(changes.upserts) == 2
    assert len(sleeps.asked) == 2 and all(6.0 < s <= 7.0 for s in sleeps.asked)  # Retry-After: 7
    bob = await source.sync_contacts(BOB, "")  # another mailbox is not held back
    assert len(bob.upserts) == 1 and len(sleeps.asked) == 2
    await source.close()


async def test_long_retry_after_gives_up_with_busy_error(sim: GraphSimulator, org: Organisation) -> None:
    source, sleeps = make_source(sim)
    org.inject_fault(Fault("http_status", status=503, back_off_ms=600_000), operation="calendarView.delta")
    with pytest.raises(SourceBusyError) as caught:
        await source.sync_calendar(ALICE, "")
    assert caught.value.retry_after_seconds == 600 and sleeps.asked == []
    await source.close()


async def test_gone_delta_token_means_clean_full_resync(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    contacts = await source.sync_contacts(ALICE, "")
    await source.sync_calendar(ALICE, "")
    window = await source.calendar_window(ALICE, *_window())
    hans = next(c for c in contacts.upserts if c.display_name == "Hans Hotline")
    org.delete_contact(ALICE, hans.item_id)
    sim.forget_delta_tokens()
    again = await source.sync_contacts(ALICE, contacts.sync_state)
    assert again.deleted_item_ids == (hans.item_id,)
    assert {c.display_name for c in again.upserts} == {"Zoë Müller"}
    calendar = await source.sync_calendar(ALICE, "")
    assert calendar.deleted_item_ids == ()
    after = await source.calendar_window(ALICE, *_window())
    assert after.occurrences == window.occurrences
    await source.close()


async def test_endless_next_link_chain_is_cut(sim: GraphSimulator) -> None:
    source, _ = make_source(sim)
    source._max_pages = 5
    sim.endless_next_links = True
    with pytest.raises(SourceDataError, match="more than 5 pages"):
        await source.sync_contacts(ALICE, "")
    await source.close()


async def test_expired_token_is_renewed_once(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    await source.sync_contacts(ALICE, "")
    sim.expire_tokens()
    changes = await source.sync_contacts(BOB, "")
    assert len(changes.upserts) == 1 and org.counters.get("token") == 2
    await source.close()


async def test_revoked_credential_is_one_line_auth_error(sim: GraphSimulator) -> None:
    source, _ = make_source(sim)
    await source.sync_contacts(ALICE, "")
    sim.revoke_credentials()
    with pytest.raises(SourceAuthError) as caught:
        await source.sync_contacts(ALICE, "")
    text = str(caught.value)
    assert "invalid_client" in text and "AADSTS7000222" in text and "\n" not in text
    assert sim.app.client_secret not in text
    await source.close()


async def test_wrong_secret_never_shows_the_secret(sim: GraphSimulator) -> None:
    source, _ = make_source(sim, client_secret=Secret("hunter2-wrong"))
    with pytest.raises(SourceAuthError) as caught:
        await source.sync_calendar(ALICE, "")
    assert "AADSTS7000215" in str(caught.value) and "hunter2" not in str(caught.value)
    await source.close()


async def test_access_denied_and_missing_mailbox(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    org.inject_fault(Fault("access_denied"), mailbox=ALICE)
    with pytest.raises(SourceAccessError, match="application access policy"):
        await source.sync_contacts(ALICE, "")
    org.remove_mailbox(BOB)
    with pytest.raises(SourceAccessError, match="ErrorInvalidUser"):
        await source.sync_calendar(BOB, "")
    await source.close()


async def test_malformed_page_is_a_data_error(sim: GraphSimulator, org: Organisation) -> None:
    source, _ = make_source(sim)
    org.inject_fault(Fault("malformed"), operation="calendarView.delta")
    with pytest.raises(SourceDataError, match="not JSON"):
        await source.calendar_window(ALICE, *_window())
    await source.close()
