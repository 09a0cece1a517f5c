"""The [web] section: defaults off and on loopback, and every mistake named."""

from __future__ import annotations

from typing import Any

import pytest

from pbxsync.sync.config import parse_config
from pbxsync.sync.errors import ConfigError

BASE: dict[str, Any] = {"exchange": {"username": "svc", "password": "pw", "server": "https://ex/EWS/Exchange.asmx"},
                        "users": [{"extension": "101", "email": "a@example.com"}]}


def test_the_portal_is_off_by_default_and_listens_on_loopback() -> None:
    web = parse_config(BASE).web
    assert not web.enabled and web.listen.is_loopback and web.admins == [] and web.user_settings == []


@pytest.mark.parametrize(("web", "problem"), [
    ({"tls_cert": "/c.pem"}, "web.tls_cert/tls_key: give both or neither"),
    ({"allowed_hosts": []}, "web.allowed_hosts: list"),
    ({"allowed_hosts": ["pbx.example.com:8480"]}, "web.allowed_hosts[0]"),
    ({"allowed_hosts": ["PBX.example.com"]}, "web.allowed_hosts[0]"),
    ({"admins": ["999"]}, "web.admins[0]: '999' is not the extension of a user"),
    ({"user_settings": ["pin"]}, "web.user_settings[0]: must be one of"),
    ({"session_minutes": 1}, "web.session_minutes"),
])
def test_mistakes_are_named(web: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**BASE, "web": web})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_an_ipv6_address_is_an_allowed_host() -> None:
    assert parse_config({**BASE, "web": {"allowed_hosts": ["::1", "pbx.example.com"]}}).web.allowed_hosts[0] == "::1"
