"""Every exchangelib/requests failure becomes one sync.errors SourceError with a one-line message."""

from __future__ import annotations

import pytest
import requests
from exchangelib import errors as ews

from pbxsync.sync.errors import SourceAccessError, SourceAuthError, SourceBusyError, SourceDataError, SourceError
from pbxsync.sync.sources.ews import _map_error, clean_text


@pytest.mark.parametrize(("exc", "expected"), [
    (ews.UnauthorizedError("Invalid credentials for http://x secret-pw"), SourceAuthError),
    (ews.ErrorAccessDenied("denied"), SourceAccessError),
    (ews.ErrorImpersonateUserDenied("no"), SourceAccessError),
    (ews.ErrorNonExistentMailbox("gone"), SourceAccessError),
    (ews.RateLimitError("Max timeout reached", wait=120), SourceBusyError),
    (ews.ErrorServerBusy("busy", back_off=3), SourceBusyError),
    (ews.ErrorInvalidSyncStateData("bad"), SourceDataError),
    (ews.MalformedResponseError("junk\n<xml>"), SourceDataError),
    (ews.SOAPError("bad soap"), SourceDataError),
    (requests.ConnectionError("refused"), SourceError),
    (ews.ErrorTimeoutExpired("timeout"), SourceError),
    (AttributeError("'NoneType' object has no attribute 'text'"), SourceDataError),
])
def test_mapping(exc: BaseException, expected: type[SourceError]) -> None:
    mapped = _map_error(exc, "alice@example.com")
    assert type(mapped) is expected
    text = str(mapped)
    assert "alice@example.com" in text and "\n" not in text and "secret-pw" not in text


def test_busy_keeps_the_servers_wait() -> None:
    mapped = _map_error(ews.RateLimitError("Max timeout reached", wait=120), "a@b")
    assert isinstance(mapped, SourceBusyError) and mapped.retry_after_seconds == 120.0


def test_clean_text_bounds_and_strips_controls() -> None:
    assert clean_text("a\x00b\r\nc" + "x" * 5000) == "a b  c" + "x" * 1018
    assert clean_text(None) == "" and clean_text(42) == ""
