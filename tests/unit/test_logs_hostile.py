"""Logging against hostile values: credential headers in any shape, control characters (issue 14)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pbxsync.plugin import logs


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    text, as_json = io.StringIO(), io.StringIO()
    logs.setup_logging("debug", "text", debug=True, stream=text)
    json_handler = logging.StreamHandler(as_json)  # the same filter under the JSON formatter
    json_handler.setFormatter(logs.JsonFormatter())
    json_handler.addFilter(logs.RedactionFilter())
    root = logging.getLogger()
    root.addHandler(json_handler)
    yield text, as_json
    for handler in [h for h in root.handlers if h.get_name() == "pbxsync"] + [json_handler]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logs.forget_secrets()


HEADERS = [
    ("Authorization: Basic c3ZjOnB3LXNlY3JldA==", "c3ZjOnB3LXNlY3JldA"),
    ("{'Authorization': 'NTLM TlRMTVNTUAADAAAAGAAYAHwAAAA=', 'Host': 'x'}", "TlRMTVNTUAAD"),
    ("send: b'POST /EWS HTTP/1.1\\r\\nAuthorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCC\\r\\n'", "YIIGhgYG"),
    ('{"authorization": "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi"}', "eyJ0eXAi"),
    ("Cookie: exchangecookie=0c4f8a2b; X-BackEndCookie=S-1-5-21=abc", "0c4f8a2b"),
    ("Set-Cookie: X-OWA-CANARY=Z3k9ZVBtAAA; path=/; secure", "Z3k9ZVBt"),
    ("{'Proxy-Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
]


@pytest.mark.parametrize(("line", "credential"), HEADERS)
def test_credential_headers_never_reach_a_log_line(captured: tuple[io.StringIO, io.StringIO], line: str,
                                                   credential: str) -> None:
    text, as_json = captured
    logging.getLogger("exchangelib.util").debug("Request headers: %s", line)
    logging.getLogger("urllib3.connectionpool").debug("x", extra={"headers": line})
    assert credential not in text.getvalue() and credential not in as_json.getvalue()
    assert logs.REDACTED in text.getvalue()


def test_ordinary_words_are_not_redacted() -> None:
    for line in ("Authorization header missing", "cookies: 3", "no cookie jar"):
        assert logs.redact(line) == line


def test_control_characters_cannot_forge_a_line(captured: tuple[io.StringIO, io.StringIO]) -> None:
    text, as_json = captured
    forged = "Mallory\n2026-11-27T09:00:00.000Z INFO    pbxsync.daemon: config reloaded\x1b[2J\r"
    logging.getLogger("pbxsync.agi").info("caller-ID lookup for %s", forged, extra={"contact": forged})
    lines = text.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "\\n2026-11-27" in lines[0] and "\\x1b[2J" in lines[0] and "\x1b" not in lines[0]
    doc = json.loads(as_json.getvalue())
    assert doc["msg"].endswith(forged.split("\n")[1])  # JSON keeps the value, escaped
