"""The Graph simulator's JSON holds the shape of Microsoft's published examples (same property names and
value types), and round-trips through the source's mapping to what the mailbox data says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.simulator.graph_json import contact_json, event_json, occurrence_ical_uid
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.graph import phone_builder
from pbxsync.sync.sources.graph_mapping import contact_to_model, event_to_occurrence
from tests.support.graph_payloads import CONTACT, EVENT_WITH_LOCATIONS

DATA = Path(__file__).parent.parent / "data" / "mailboxes.json"
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
ALICE = "alice@example.com"


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__ if value is not None else None


def _org() -> Organisation:
    return Organisation.load_file(DATA, now=NOW)


def test_event_has_every_property_of_microsofts_example() -> None:
    org = _org()
    occ = next(o for o in org.calendar_view(ALICE, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
               if o.kind == "exception")
    body = event_json(org, ALICE, occ, UTC, "UTC")
    example = {k for k in EVENT_WITH_LOCATIONS if not k.startswith("@odata.context")}
    assert example <= set(body)
    for key in ("start", "end", "responseStatus", "organizer", "body"):
        assert set(_shape(body[key])) == set(_shape(EVENT_WITH_LOCATIONS[key])), key
    attendee_keys = {frozenset(a) for a in EVENT_WITH_LOCATIONS["attendees"]}
    assert {frozenset(a) for a in body["attendees"]} <= attendee_keys
    assert body["start"]["dateTime"].endswith(".0000000") and body["type"] == "exception"
    assert body["originalStart"].endswith("Z") and body["seriesMasterId"] == occ.master.item_id


def test_occurrence_ical_uid_differs_per_occurrence_like_graph() -> None:
    uid = "040000008200E00074C5B7101A82E00800000000D02AC02D9F51D301000000000000000010000000AB"
    first = occurrence_ical_uid(uid, datetime(2026, 3, 23, 8, tzinfo=UTC))
    assert first[:32] == uid[:32] and first[32:40] == "07EA0317" and first[40:] == uid[40:]
    assert occurrence_ical_uid(uid, None) == uid
    assert occurrence_ical_uid("weekly-standup", datetime(2026, 3, 23, 8, tzinfo=UTC)) != "weekly-standup"


def test_event_round_trip_through_the_mapping() -> None:
    org = _org()
    for occ in org.calendar_view(ALICE, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)):
        mapped = event_to_occurrence(event_json(org, ALICE, occ, UTC, "UTC"), series_uid=occ.master.uid)
        assert (mapped.item_id, mapped.uid, mapped.subject, mapped.location) == (
            occ.item_id, occ.master.uid, occ.subject, occ.location)
        assert mapped.start == occ.start.astimezone(UTC) and mapped.end == occ.end.astimezone(UTC)
        assert mapped.recurrence_id == (occ.original_start.astimezone(UTC) if occ.original_start else None)


def test_contact_has_microsofts_example_properties_and_round_trips() -> None:
    org = _org()
    record = next(c for c in org.contacts(ALICE) if c.display_name == "Zoë Müller")
    body = contact_json(record, "AAMkCFdefault")
    assert {k for k in CONTACT if not k.startswith("@")} <= set(body)
    contact = contact_to_model(body, phone_builder("DE"))
    assert (contact.display_name, contact.company, contact.title, contact.emails) == (
        "Zoë Müller", "Acme GmbH", "CFO", ("zoe@acme.example",))
    assert sorted((p.kind.value, p.raw) for p in contact.phones) == [("business", "+49 30 1234-4711"),
                                                                     ("mobile", "0171 2345678")]


def test_simulate_graph_command_prints_a_working_exchange_section(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import threading
    import tomllib

    from pbxsync.plugin.commands import simulate
    from pbxsync.sync.config import parse_config

    data = Path(__file__).resolve().parents[1] / "data" / "mailboxes.json"
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers())
    args = parser.parse_args(["simulate", "graph", "--data", str(data), "--listen", "127.0.0.1:0",
                              "--tls-dir", str(tmp_path)])
    stop = threading.Event()
    stop.set()  # serve, print, and stop at once
    assert simulate.run_graph(args, stop) == 0
    out = capsys.readouterr().out
    section = out[out.index("[exchange]"):]
    cfg = parse_config(tomllib.loads(section))
    assert cfg.exchange.backend == "graph" and cfg.exchange.authority.startswith("https://127.0.0.1:")
    assert Path(cfg.exchange.ca_file).parent == tmp_path
    bad = parser.parse_args(["simulate", "graph", "--data", str(data), "--listen", "192.168.1.1:443"])
    with pytest.raises(Exception, match="loopback"):
        simulate.run_graph(bad, stop)
