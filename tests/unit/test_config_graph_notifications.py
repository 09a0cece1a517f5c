"""[exchange] notification_url, notification_listen, poll_seconds, contacts_poll_seconds."""

from __future__ import annotations

from typing import Any

import pytest

from pbxsync.sync.config import parse_config
from pbxsync.sync.errors import ConfigError

GRAPH = {"backend": "graph", "tenant_id": "t", "client_id": "c", "client_secret": "s"}


def problems(**exchange: Any) -> list[str]:
    try:
        parse_config({"exchange": {**GRAPH, **exchange}})
    except ConfigError as exc:
        return exc.problems
    return []


def test_defaults_poll_calendars_every_30_s_and_contacts_every_5_min() -> None:
    ex = parse_config({"exchange": GRAPH}).exchange
    assert (ex.notification_url, str(ex.notification_listen)) == ("", "127.0.0.1:8460")
    assert (ex.poll_seconds, ex.contacts_poll_seconds) == (30, 300)


def test_a_public_https_url_is_accepted() -> None:
    assert problems(notification_url="https://pbx.example.com/pbxsync/graph/notify") == []


@pytest.mark.parametrize("url", ["http://pbx.example.com/hook", "ftp://pbx.example.com/hook", "pbx.example.com/hook",
                                 "https:///hook", "https://pbx.example.com/hook?x=1", "https://pbx.example.com/h#f"])
def test_graph_only_posts_to_https_urls_without_query(url: str) -> None:
    assert any(p.startswith("exchange.notification_url: must be a public https:// URL") for p in problems(
        notification_url=url))


def test_plain_http_is_allowed_on_loopback_for_the_simulator() -> None:
    assert problems(notification_url="http://127.0.0.1:8460/hook") == []


def test_the_listen_address_is_checked() -> None:
    assert problems(notification_listen="8460") == ["exchange.notification_listen: expected HOST:PORT, got '8460'"]
    assert str(parse_config({"exchange": {**GRAPH, "notification_listen": "[::1]:9000"}}).exchange.notification_listen
               ) == "[::1]:9000"


@pytest.mark.parametrize(("key", "value", "ok"), [("poll_seconds", 0, True), ("poll_seconds", 5, True),
                                                  ("poll_seconds", 4, False), ("poll_seconds", -1, False),
                                                  ("contacts_poll_seconds", 86400, True),
                                                  ("contacts_poll_seconds", 86401, False)])
def test_poll_intervals_are_off_or_sensible(key: str, value: int, ok: bool) -> None:
    assert (problems(**{key: value}) == []) is ok
