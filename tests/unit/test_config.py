"""The config loader: types, every problem with its key path, secrets from all four sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pbxsync.sync.config import load_config, parse_config
from pbxsync.sync.errors import ConfigError

MINIMAL = {
    "exchange": {"username": "svc@example.com", "password": "pw"},
    "users": [{"extension": "101", "email": "alice@example.com", "room": "8001"}],
}


def test_minimal_config_gets_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.exchange.backend == "ews"
    assert cfg.sync.interval_minutes == 15
    assert cfg.users[0].email == ["alice@example.com"]
    assert cfg.users[0].mailbox == "alice@example.com"
    assert cfg.pbx.dial == "PJSIP/{extension}"


def test_every_problem_is_listed_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({
            "exchange": {"auth": 3, "bogus": True, "username": "x", "password": "y"},
            "sync": {"days_ahead": "thirty"},
            "users": [{"extension": "1 01", "email": ["not-an-address"]}, {"email": "b@example.com"}],
        })
    problems = caught.value.problems
    assert "exchange.auth: expected a string, got an integer" in problems
    assert "exchange.bogus: unknown key" in problems
    assert "sync.days_ahead: expected an integer, got a string" in problems
    assert "users[1].extension: required" in problems
    assert len(problems) >= 4


def test_cross_checks() -> None:
    data = {**MINIMAL, "users": [{"extension": "101", "email": "a@example.com"},
                                 {"extension": "101", "email": "A@example.com"}],
            "pbx": {"dial": "PJSIP/101"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    text = "\n".join(caught.value.problems)
    assert "users[1].extension: 101 is listed twice" in text
    assert "belongs to another user too" in text
    assert "pbx.dial: must contain {extension}" in text


def test_graph_backend_needs_app_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"exchange": {"backend": "graph"}})
    text = str(caught.value)
    assert "exchange.tenant_id" in text and "exchange.client_id" in text and "exchange.client_secret" in text


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("PBXSYNC_TEST_SECRET", "from-env")
    for spec, expected in (({"password_file": str(secret_file)}, "from-file"),
                           ({"password_env": "PBXSYNC_TEST_SECRET"}, "from-env"),
                           ({"password_command": "echo from-command"}, "from-command"),
                           ({"password": "s3cr3t-inline"}, "s3cr3t-inline")):
        cfg = parse_config({"exchange": {"username": "svc@example.com", **spec}})
        assert cfg.exchange.password.reveal() == expected
        assert expected not in repr(cfg)  # a Secret never prints its value


def test_secret_errors_name_the_source_not_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"exchange": {"username": "s@example.com", "password_file": str(tmp_path / "missing")},
                      "pbx": {"secret_env": "PBXSYNC_UNSET_VARIABLE"},
                      "ldap": {"bind_password": "a", "bind_password_env": "X"}})
    text = str(caught.value)
    assert "password_file: cannot read" in text
    assert "secret_env: environment variable PBXSYNC_UNSET_VARIABLE is not set" in text
    assert "ldap.bind_password: give only one of" in text


def test_load_config_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("database = \n")
    with pytest.raises(ConfigError, match="TOML syntax"):
        load_config(str(bad))


def test_relative_database_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_file = tmp_path / "pbxsync.toml"
    cfg_file.write_text('database = "state/pbxsync.db"\n[exchange]\nusername = "s@example.com"\n')
    monkeypatch.setenv("PBXSYNC_CONFIG", str(cfg_file))
    cfg = load_config(None)
    assert cfg.database == os.path.join(str(tmp_path), "state", "pbxsync.db")
    assert cfg.path == str(cfg_file)


def test_meetings_section_defaults_and_checks() -> None:
    cfg = parse_config(MINIMAL)
    assert (cfg.meetings.max_group_members, cfg.meetings.group_cache_minutes, cfg.meetings.group_domains) == (
        200, 60, [])
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "meetings": {"max_group_members": 0, "group_cache_minutes": -1,
                                              "group_domains": ["example.com", "a@b", ""]}})
    text = "\n".join(caught.value.problems)
    assert "meetings.max_group_members: must be between 1 and 10000" in text
    assert "meetings.group_cache_minutes: must be between 0" in text
    assert "meetings.group_domains[1]: 'a@b' is not a mail domain" in text
    assert "meetings.group_domains[2]: '' is not a mail domain" in text
    assert "group_domains[0]" not in text
