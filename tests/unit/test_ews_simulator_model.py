"""The simulator's data model, data-file loader, XML escaping and CLI (no network beyond loopback)."""

from __future__ import annotations

import argparse
import threading
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.commands import simulate
from pbxsync.sync.simulator.ews_xml import esc, xml_safe
from pbxsync.sync.simulator.mailboxes import DataFileError, Organisation, decode_sync_state, parse_time

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
DEMO = Path(__file__).parent.parent.parent / "examples" / "demo-mailboxes.json"
DATA = Path(__file__).parent.parent / "data" / "mailboxes.json"


def test_relative_times() -> None:
    assert parse_time("now+20s", BERLIN, NOW) == NOW + timedelta(seconds=20)
    assert parse_time("now-1h+30m", BERLIN, NOW) == NOW - timedelta(minutes=30)
    assert parse_time("today+1d 09:00", BERLIN, NOW) == datetime(2026, 11, 28, 9, tzinfo=BERLIN)
    assert parse_time("2026-07-01T09:00", BERLIN, NOW).utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError, match="bad time"):
        parse_time("tomorrow", BERLIN, NOW)


def test_loader_lists_every_problem_with_its_path() -> None:
    with pytest.raises(DataFileError) as caught:
        Organisation.from_dict({"users": [{"email": "a@example.com", "password": "x", "colour": 1}],
                                "mailboxes": {"ghost@example.com": {}},
                                "meetings": [{"organizer": {"email": "a@example.com"}, "start": "now",
                                              "timezone": "Nowhere/Land"},
                                             {"organizer": {"email": "a@example.com"}, "start": "now",
                                              "recurrence": {"pattern": "hourly"}}]}, now=NOW)
    text = str(caught.value)
    for expected in ("$.users[0].colour: unknown key", "ghost@example.com", "$.meetings[0].timezone",
                     "$.meetings[1].recurrence.pattern"):
        assert expected in text


def test_demo_and_test_files_load_and_demo_starts_soon() -> None:
    org = Organisation.load_file(DEMO, now=NOW)
    soon = [o for u in org.users() for o in org.calendar_view(u.email, NOW, NOW + timedelta(minutes=5))]
    assert soon, "the demo needs a meeting starting within minutes"
    assert Organisation.load_file(DATA, now=NOW).contacts("alice@example.com")


def test_paged_change_log_and_foreign_sync_state() -> None:
    org = Organisation.load_file(DATA, now=NOW)
    page = org.changes_since("alice@example.com", "contacts", 0, 1)
    assert len(page.changes) == 1 and not page.includes_last
    rest = org.changes_since("alice@example.com", "contacts", page.seq, 10)
    assert len(rest.changes) == 1 and rest.includes_last
    with pytest.raises(ValueError):
        decode_sync_state("bm90IG91cnM=", "alice@example.com", "contacts")


@given(st.text())
def test_xml_escaping_round_trips(text: str) -> None:
    parsed = ET.fromstring(f'<a b="{esc(text)}">{esc(text)}</a>')
    assert (parsed.text or "") == xml_safe(text)
    assert parsed.get("b") == xml_safe(text)


def test_simulate_exchange_command_serves_until_stopped(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    args = parser.parse_args(["simulate", "exchange", "--data", str(DATA), "--listen", "127.0.0.1:0"])
    stop = threading.Event()
    worker = threading.Thread(target=simulate.run_exchange, args=(args, stop))
    worker.start()
    stop.set()
    worker.join(timeout=10)
    assert not worker.is_alive()
    bad = parser.parse_args(["simulate", "exchange", "--data", str(DATA), "--listen", "10.1.1.1:80"])
    with pytest.raises(Exception, match="loopback"):
        simulate.run_exchange(bad, stop)


def test_unauthenticated_request_gets_401() -> None:
    from pbxsync.sync.simulator.ews_server import EwsSimulator

    with EwsSimulator(Organisation.load_file(DATA, now=NOW)) as sim:
        request = urllib.request.Request(sim.ews_url, data=b"<x/>", method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        assert caught.value.headers["WWW-Authenticate"].startswith("Basic")


def test_a_simulator_stops_cleanly_without_having_started_and_twice() -> None:
    import threading

    from pbxsync.sync.simulator.ews_server import EwsSimulator
    from pbxsync.sync.simulator.mailboxes import Organisation

    sim = EwsSimulator(Organisation())
    stopper = threading.Thread(target=lambda: (sim.stop(), sim.stop()), daemon=True)
    stopper.start()
    stopper.join(timeout=10)
    assert not stopper.is_alive(), "stop() without start() hung waiting for a serve loop that never ran"
    with EwsSimulator(Organisation()) as running:
        assert running.port > 0
    running.stop()  # a second stop after the context manager's is harmless
