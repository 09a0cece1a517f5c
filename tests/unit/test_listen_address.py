"""One listen-address type: parsed once when the config loads, hostile values refused with the key path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.autocall.dialplan import DialplanNames
from pbxsync.plugin.check.local import listeners
from pbxsync.sync.config import parse_config
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.listen import ListenAddress, loopback_port

MINIMAL = {"exchange": {"username": "svc@example.com", "password": "pw"}}


@pytest.mark.parametrize(("text", "host", "port"), [
    ("127.0.0.1:4573", "127.0.0.1", 4573),
    ("0.0.0.0:0", "0.0.0.0", 0),
    ("localhost:65535", "localhost", 65535),
    ("pbx.example.com:389", "pbx.example.com", 389),
    ("[::1]:389", "::1", 389),
    ("[::]:4573", "::", 4573),
    ("[fe80::1%eth0]:389", "fe80::1%eth0", 389),
    ("[::ffff:192.0.2.1]:389", "::ffff:192.0.2.1", 389),
])
def test_valid_addresses_parse_to_host_and_port(text: str, host: str, port: int) -> None:
    parsed = ListenAddress.parse(text)
    assert parsed == ListenAddress(host, port)
    assert str(parsed) == text  # the config syntax comes back, IPv6 in brackets
    assert parsed.is_ipv6 == text.startswith("[")


@pytest.mark.parametrize(("text", "says"), [
    ("", "expected HOST:PORT"),
    ("127.0.0.1", "expected HOST:PORT"),
    ("127.0.0.1:", "expected HOST:PORT"),
    (":389", "expected HOST:PORT"),
    ("127.0.0.1:80\n", "expected HOST:PORT"),  # a trailing newline is not ignored
    (" 127.0.0.1:80", "expected HOST:PORT"),
    ("127.0.0.1:80;rm -rf /", "expected HOST:PORT"),
    ("127.0.0.1:\u0661\u0662", "expected HOST:PORT"),  # digits, but not ASCII ones
    ("127.0.0.1:-1", "expected HOST:PORT"),
    ("127.0.0.1:65536", "port 65536 is not between 0 and 65535"),
    ("127.0.0.1:999999", "expected HOST:PORT"),
    ("::1:389", "write an IPv6 address in brackets: [::1]:389"),
    ("[::1]", "expected HOST:PORT"),
    ("[1:2:3]:389", "is not an IPv6 address"),
    ("[127.0.0.1]:389", "is not an IPv6 address"),
    ("999.0.0.1:389", "'999.0.0.1' is not an IPv4 address"),
    ("a..b:389", "'a..b' is not a host name"),
    ("-pbx:389", "'-pbx' is not a host name"),
    ("pbx_1:389", "expected HOST:PORT"),
])
def test_hostile_or_wrong_values_are_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        ListenAddress.parse(text)
    assert says in str(caught.value)


def test_a_refused_value_is_shown_cut_and_escaped() -> None:
    with pytest.raises(ValueError) as caught:
        ListenAddress.parse("x" * 500 + "\r\n:1")
    message = str(caught.value)
    assert len(message) < 200 and "\n" not in message and "\r" not in message


@given(st.text(max_size=60))
def test_parse_never_raises_anything_but_value_error(text: str) -> None:
    try:
        parsed = ListenAddress.parse(text)
    except ValueError:
        return
    assert 0 <= parsed.port <= 65535 and parsed.host and ListenAddress.parse(str(parsed)) == parsed


def test_config_parses_every_listener_once() -> None:
    cfg = parse_config({**MINIMAL, "agi": {"listen": "[::1]:4600"}, "ldap": {"listen": "0.0.0.0:389"},
                        "control": {"listen": "127.0.0.1:0", "token": "t0ken", "metrics_listen": ""}})
    assert cfg.agi.listen == ListenAddress("::1", 4600)
    assert cfg.ldap.listen == ListenAddress("0.0.0.0", 389)
    assert cfg.ldap.ldaps_listen is None  # not given: off
    assert cfg.control.metrics_listen is None  # "" turns it off
    assert [(listener.key, str(listener.address)) for listener in listeners(cfg)] == [
        ("control.listen", "127.0.0.1:0"), ("agi.listen", "[::1]:4600"), ("ldap.listen", "0.0.0.0:389")]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "agi": {"listen": "::1:4573"}, "ldap": {"listen": 389, "ldaps_listen": "x:99999"},
                      "control": {"listen": ""}})
    problems = caught.value.problems
    with pytest.raises(ConfigError) as blank:  # control.listen is optional now (the Unix socket is the default)
        parse_config({**MINIMAL, "agi": {"listen": ""}})
    assert "agi.listen: expected HOST:PORT, got '::1:4573' (write an IPv6 address in brackets: [::1]:389)" in problems
    assert "ldap.listen: expected a string like \"127.0.0.1:389\", got an integer" in problems
    assert "ldap.ldaps_listen: port 99999 is not between 0 and 65535 in 'x:99999'" in problems
    assert not any(p.startswith("control.listen") for p in problems)
    assert "agi.listen: expected HOST:PORT, got ''" in blank.value.problems  # only optional listeners may be off


def test_dialplan_takes_the_agi_address_from_the_parsed_config() -> None:
    for listen, expected in (("0.0.0.0:4600", "127.0.0.1:4600"), ("[::]:4600", "127.0.0.1:4600"),
                             ("192.0.2.7:4573", "192.0.2.7:4573"), ("[::1]:4573", "[::1]:4573")):
        cfg = parse_config({**MINIMAL, "agi": {"listen": listen}})
        assert DialplanNames.from_config(cfg).agi_address == expected


def test_simulators_bind_to_loopback_only() -> None:
    assert loopback_port("127.0.0.1:0") == 0
    assert loopback_port("localhost:8443") == 8443
    for text in ("0.0.0.0:8443", "[::1]:8443", "192.0.2.1:80", "127.0.0.1:70000", "127.0.0.1"):
        assert loopback_port(text) is None
