"""[control]: a Unix socket by default, TCP only with a token, nothing beyond loopback unless allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxsync.sync.config import DEFAULT_CONTROL_SOCKET, parse_config
from pbxsync.sync.errors import ConfigError

BASE = {"exchange": {"username": "svc@example.com"}}


def problems(control: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "control": control})
    return str(caught.value)


def test_the_default_is_the_unix_socket_and_no_tcp() -> None:
    control = parse_config(BASE).control
    assert control.socket == DEFAULT_CONTROL_SOCKET and control.listen is None and not control.token


def test_tcp_needs_a_token(tmp_path: Path) -> None:
    assert "control.listen: TCP control needs control.token_file" in problems({"listen": "127.0.0.1:8459"})
    token = tmp_path / "token"
    token.write_text("abc\n")
    control = parse_config({**BASE, "control": {"listen": "127.0.0.1:8459", "token_file": str(token)}}).control
    assert control.token.reveal() == "abc"


@pytest.mark.parametrize("key", ["listen", "metrics_listen"])
def test_an_address_beyond_loopback_needs_allow_remote(tmp_path: Path, key: str) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    for address in ("0.0.0.0:8459", "192.0.2.10:8459", "[::]:8459", "pbx.example.com:8459"):
        text = problems({key: address, "token_file": str(token)})
        assert f"control.{key}: {address} is not a loopback address" in text
    for address in ("127.0.0.1:8459", "[::1]:8459", "localhost:8459", "127.0.0.2:8459"):
        parse_config({**BASE, "control": {key: address, "token_file": str(token)}})
    parse_config({**BASE, "control": {key: "0.0.0.0:8459", "token_file": str(token), "allow_remote": True}})


def test_the_socket_path_is_absolute_and_short() -> None:
    assert "control.socket: must be an absolute path" in problems({"socket": "control.sock"})
    assert "control.socket: must be an absolute path" in problems({"socket": "/" + "x" * 120})
    assert "control.socket: set a socket path" in problems({"socket": ""})
