"""The portal's pure defences: signed session cookies, CSRF tokens, the Host allow-list, the Origin check,
and the signing key file."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.web.secret_key import KEY_BYTES, key_path, load_or_create_key
from pbxsync.plugin.web.security import host_allowed, host_name, origin_matches
from pbxsync.plugin.web.sessions import csrf_ok, csrf_token, decode_cookie, encode_cookie
from pbxsync.sync.config import Config, WebConfig
from pbxsync.sync.errors import ConfigError

KEY = b"k" * 32
NOW = FakeClock().now()


def test_a_cookie_reads_back_until_it_expires() -> None:
    cookie = encode_cookie(KEY, "sid", "102", NOW + timedelta(minutes=5))
    read = decode_cookie(KEY, cookie, NOW)
    assert read is not None and (read.session_id, read.extension) == ("sid", "102")
    assert decode_cookie(KEY, cookie, NOW + timedelta(minutes=5)) is None


@pytest.mark.parametrize("change", [
    lambda c: c.replace(".102.", ".101."),  # another user
    lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # a guessed signature
    lambda c: c.rsplit(".", 2)[0] + ".99999999999." + c.rsplit(".", 1)[1],  # a longer life
    lambda c: "",
    lambda c: "a.b",
    lambda c: c + "x" * 400,
])
def test_an_altered_or_forged_cookie_is_no_session(change: object) -> None:
    cookie = encode_cookie(KEY, "sid", "102", NOW + timedelta(minutes=5))
    assert decode_cookie(KEY, change(cookie), NOW) is None  # type: ignore[operator]
    assert decode_cookie(b"x" * 32, cookie, NOW) is None  # signed with another key


def test_csrf_tokens_are_bound_to_their_session() -> None:
    token = csrf_token(KEY, "session-a")
    assert csrf_ok(KEY, "session-a", token)
    assert not csrf_ok(KEY, "session-b", token)
    assert not csrf_ok(KEY, "", csrf_token(KEY, ""))  # no session, no valid token
    assert not csrf_ok(KEY, "session-a", "")


@pytest.mark.parametrize(("header", "name"), [
    ("pbx.example.com", "pbx.example.com"), ("PBX.Example.com:8480", "pbx.example.com"),
    ("127.0.0.1:8480", "127.0.0.1"), ("[::1]:8480", "::1"), ("pbx.example.com.", "pbx.example.com"),
    ("[::1", ""), ("host:port", ""),
])
def test_host_names_are_read_without_port(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(("header", "allowed"), [
    ("localhost:8480", True), ("127.0.0.1:8480", True), ("[::1]:8480", True), ("[0:0:0:0:0:0:0:1]:8480", True),
    ("evil.example:8480", False), ("127.0.0.2", False), ("localhost.evil.example", False), ("", False),
    ("pbx.example.com@evil.example", False),
])
def test_only_allowed_host_names_pass(header: str, allowed: bool) -> None:
    assert host_allowed(header, ["localhost", "127.0.0.1", "::1"]) is allowed


@pytest.mark.parametrize(("origin", "host", "same"), [
    ("http://127.0.0.1:8480", "127.0.0.1:8480", True), ("https://pbx.example.com", "pbx.example.com", True),
    ("http://evil.example", "127.0.0.1:8480", False), ("null", "127.0.0.1:8480", False),
    ("http://127.0.0.1:8481", "127.0.0.1:8480", False), ("file://", "", False),
    # a port left out is the scheme's default on either side (a proxy passes "pbx:443" or "pbx")
    ("https://pbx.example.com", "pbx.example.com:443", True), ("https://pbx.example.com:443", "pbx.example.com", True),
    ("http://pbx.example.com", "pbx.example.com:80", True), ("https://pbx.example.com", "pbx.example.com:80", False),
    ("https://pbx.example.com:8443", "pbx.example.com", False), ("http://[::1]:8480", "[::1]:8480", True),
    ("http://[::1]", "[::1]:8480", False), ("http://PBX.example.com:8480", "pbx.example.com:8480", True),
    ("http://pbx.example.com:x", "pbx.example.com", False), ("http://u@pbx.example.com", "pbx.example.com", False),
    ("http://pbx.example.com.evil.example", "pbx.example.com", False),
])
def test_the_origin_must_be_this_site(origin: str, host: str, same: bool) -> None:
    assert origin_matches(origin, host) is same


def test_the_key_file_is_made_private_once_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "web-secret.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key


@pytest.mark.parametrize("content", ["not hex", "abcd"])
def test_a_damaged_key_file_is_a_clear_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "web-secret.key"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"web\.secret_key_file"):
        load_or_create_key(path)


def test_the_key_lives_beside_the_database_unless_configured(tmp_path: Path) -> None:
    assert key_path(Config(database=str(tmp_path / "pbxsync.db"))) == tmp_path / "web-secret.key"
    chosen = tmp_path / "elsewhere.key"
    assert key_path(Config(web=WebConfig(secret_key_file=str(chosen)))) == chosen
