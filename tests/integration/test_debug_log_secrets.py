"""`pbxsync --debug` must not log credentials: an EWS sync against the simulator with every library at DEBUG.

exchangelib, requests and urllib3 log request and response headers at DEBUG; the base64 of user:password in
`Authorization: Basic` is not a configured secret, so only the header-aware redaction catches it (issue 14).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxsync.plugin import logs
from pbxsync.sync.config import parse_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from pbxsync.sync.sources.ews import EwsSource

DATA = Path(__file__).parent.parent / "data" / "mailboxes.json"
USER, PASSWORD = "svc-pbx@example.com", "svc-pw"


@pytest.fixture
def sim() -> Iterator[EwsSimulator]:
    with EwsSimulator(Organisation.load_file(DATA, now=datetime(2026, 3, 20, 12, tzinfo=UTC))) as server:
        yield server


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == "pbxsync"]:
        root.removeHandler(handler)
    root.setLevel(level)
    logs.forget_secrets()


async def test_an_ews_sync_at_debug_logs_no_credentials(sim: EwsSimulator) -> None:
    config = parse_config({
        "exchange": {"server": sim.ews_url, "auth": "basic", "username": USER, "password": PASSWORD},
        "users": [{"extension": "101", "email": "alice@example.com"}],
    })
    out = io.StringIO()
    logs.setup_logging("debug", "text", debug=True, config=config, stream=out)
    source = EwsSource(config.exchange, config.users, config.sync.default_region)
    try:
        changes = await source.sync_contacts("alice@example.com", "")
    finally:
        await source.close()
    assert changes.sync_state  # the sync really ran, through exchangelib's logging
    text = out.getvalue()
    assert "exchangelib" in text and "Authorization" in text  # the headers were logged, redacted
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert basic not in text and basic.rstrip("=") not in text
    assert PASSWORD not in text
