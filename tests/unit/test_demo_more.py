"""The demo's steps for write-back, notices, XML phonebook and presence (plugin.demo_more): their config,
scenario meetings and the pure helpers that print what the simulators give back. `pbxsync demo` itself runs
in tests/integration/test_installed_package.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pbxsync.plugin.demo import DEMO_USERS, SCENARIO_MEETINGS
from pbxsync.plugin.demo_more import (
    DIAL_IN_NUMBER,
    MORE_MEETINGS,
    PHONEBOOK_LOGIN,
    more_config,
    readable_lines,
    yealink_entries,
)
from pbxsync.plugin.writeback.render import JoinDetails, render_block
from pbxsync.sync.config import parse_config

RAW = {"database": "/tmp/demo.db", "users": DEMO_USERS, "pbx": {"rooms": ["8090"], "secret": "s"},
       "exchange": {"server": "http://127.0.0.1:1/EWS/Exchange.asmx", "username": "svc@example.com"},
       "control": {"socket": "/tmp/demo-control.sock", "metrics_listen": ""}}


def test_more_config_switches_this_rounds_parts_on_on_loopback_without_touching_the_input() -> None:
    before = repr(RAW)
    config = parse_config(more_config(RAW), "demo.toml")
    assert repr(RAW) == before
    assert config.meetings.write_back and config.meetings.notify_organizer
    assert config.pbx.dial_in_numbers == [DIAL_IN_NUMBER] and config.pbx.rooms == ["8090"]
    assert config.presence.enabled
    assert config.phonebook.listen is not None and str(config.phonebook.listen).startswith("127.0.0.1:")
    with_password = [u.extension for u in config.users if u.ldap_password]
    assert with_password == [PHONEBOOK_LOGIN]


def test_the_rejected_meeting_is_in_the_scenario_with_a_pbx_organizer() -> None:
    uids = [m["uid"] for m in SCENARIO_MEETINGS]
    assert {m["uid"] for m in MORE_MEETINGS} <= set(uids) and len(uids) == len(set(uids))
    pbx_users = {u["email"] for u in DEMO_USERS}
    assert all(m["organizer"]["email"] in pbx_users for m in MORE_MEETINGS)


def test_readable_lines_of_an_html_and_a_text_block() -> None:
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    details = JoinDetails(room="8001", pin="4711", autocall=True, start=start, end=start + timedelta(minutes=30),
                          timezone="Europe/Berlin", dial_in_numbers=(DIAL_IN_NUMBER,))
    html_lines = readable_lines(render_block(details, True), True)
    assert html_lines == readable_lines(render_block(details, False), False)
    assert html_lines[0] == "Join by phone"
    assert f"Dial-in: {DIAL_IN_NUMBER}" in html_lines and "PIN: 4711" in html_lines
    assert not any("pbxsync" in line or "<" in line for line in html_lines)


def test_yealink_entries() -> None:
    document = ("<YealinkIPPhoneDirectory><DirectoryEntry><Name>Zoë Müller</Name><Telephone>030123</Telephone>"
                "<Telephone>0171</Telephone></DirectoryEntry><DirectoryEntry><Name>A &amp; B</Name>"
                "</DirectoryEntry></YealinkIPPhoneDirectory>").encode()
    assert yealink_entries(document) == [("Zoë Müller", ["030123", "0171"]), ("A & B", [])]
