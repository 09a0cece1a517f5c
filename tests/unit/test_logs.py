"""Logging: formats, levels and the redaction net for secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pbxsync.plugin import logs
from pbxsync.sync.config import parse_config
from pbxsync.sync.secrets import Secret


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    logs.forget_secrets()
    yield
    root = logging.getLogger()
    for h in [h for h in root.handlers if h.get_name() == "pbxsync"]:
        root.removeHandler(h)
    logs.forget_secrets()


def _config(password: str = "hunter2-very-secret") -> object:
    return parse_config({
        "exchange": {"username": "svc@example.com", "password": password},
        "pbx": {"secret": "ami-s3cret"},
        "users": [{"extension": "101", "email": "alice@example.com", "password": "alice-pw-123"}],
    })


def test_config_secrets_are_registered_and_scrubbed_from_message_args_and_extra() -> None:
    out = io.StringIO()
    logs.setup_logging("info", "text", config=_config(), stream=out)
    log = logging.getLogger("pbxsync.test")
    log.info("connecting with %s", "hunter2-very-secret", extra={"header": "Basic ami-s3cret"})
    log.warning("user pw alice-pw-123 leaked")
    text = out.getvalue()
    assert "hunter2-very-secret" not in text and "ami-s3cret" not in text and "alice-pw-123" not in text
    assert text.count(logs.REDACTED) == 3
    assert "connecting with ***" in text
    assert "header=" in text


def test_secrets_are_scrubbed_from_tracebacks() -> None:
    out = io.StringIO()
    logs.setup_logging("info", "json", stream=out)
    logs.register_secret(Secret("tok-abcdef"))
    try:
        raise RuntimeError("auth failed for token tok-abcdef")
    except RuntimeError:
        logging.getLogger("pbxsync.test").exception("boom")
    doc = json.loads(out.getvalue().strip())
    assert "tok-abcdef" not in out.getvalue()
    assert "RuntimeError: auth failed for token ***" in doc["exc"]


def test_json_lines_carry_level_logger_message_and_extra_fields() -> None:
    out = io.StringIO()
    logs.setup_logging("debug", "json", stream=out)
    logging.getLogger("pbxsync.daemon").debug("sync done", extra={"user": "101", "added": 3})
    doc = json.loads(out.getvalue())
    assert doc["level"] == "debug"
    assert doc["logger"] == "pbxsync.daemon"
    assert doc["msg"] == "sync done"
    assert doc["user"] == "101" and doc["added"] == 3
    assert doc["ts"].endswith("+00:00")


def test_level_from_config_and_debug_override() -> None:
    out = io.StringIO()
    logs.setup_logging("warning", "text", stream=out)
    logging.getLogger("pbxsync.x").info("hidden")
    logging.getLogger("pbxsync.x").warning("shown")
    assert "hidden" not in out.getvalue() and "shown" in out.getvalue()
    assert logs.level_from("warning", debug=True) == logging.DEBUG
    assert logs.level_from("error") == logging.ERROR


def test_setup_twice_replaces_the_handler_instead_of_doubling_lines() -> None:
    out = io.StringIO()
    logs.setup_logging("info", "text", stream=io.StringIO())
    logs.setup_logging("info", "text", stream=out)
    logging.getLogger("pbxsync.x").info("once")
    assert out.getvalue().count("once") == 1


def test_setup_from_config_honours_cli_overrides() -> None:
    out = io.StringIO()
    cfg = _config()
    logs.setup_from_config(cfg, debug=True, log_format="json", stream=out)
    logging.getLogger("pbxsync.x").debug("dbg")
    assert json.loads(out.getvalue())["msg"] == "dbg"


def test_short_values_are_not_registered_so_logs_stay_readable() -> None:
    logs.register_secret("ab")
    assert logs.redact("ab cd") == "ab cd"


def test_a_broken_format_string_still_logs_a_line() -> None:
    record = logging.LogRecord("pbxsync.x", logging.INFO, __file__, 1, "%d items", ("not-a-number",), None)
    assert logs.RedactionFilter().filter(record)
    assert "items" in logs.TextFormatter().format(record)


def test_the_default_handler_follows_sys_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logs.setup_logging("info", "text")
    logging.getLogger("pbxsync.x").info("one")
    first.close()  # e.g. a test's captured stderr, closed after the test
    monkeypatch.setattr("sys.stderr", second)
    logging.getLogger("pbxsync.x").info("two")
    assert "two" in second.getvalue()


def test_redaction_keeps_exc_info_for_other_handlers() -> None:
    logs.register_secret("tok-abcdef")
    try:
        raise RuntimeError("token tok-abcdef")
    except RuntimeError:
        import sys

        record = logging.LogRecord("pbxsync.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert logs.RedactionFilter().filter(record)
    assert record.exc_info is not None and record.exc_text is not None
    assert "tok-abcdef" not in record.exc_text
    assert "tok-abcdef" not in logs.TextFormatter().format(record)


def test_after_logging_shut_down_at_exit_a_late_record_is_dropped_without_a_logging_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    handler = logs.setup_logging("info", "text", debug=True, stream=out)

    def unformattable(record: logging.LogRecord) -> str:  # as at interpreter teardown: imports fail
        raise ImportError("sys.meta_path is None, Python is likely shutting down")

    handler.format = unformattable  # type: ignore[method-assign]
    handler.close()  # what logging.shutdown() does to every handler at exit
    logging.getLogger("exchangelib.protocol").debug("Server %s: Closing sessions", "127.0.0.1")
    assert out.getvalue() == ""
    assert "Logging error" not in capsys.readouterr().err


def test_traces_that_copy_mailbox_content_stay_quiet_even_with_debug() -> None:
    # exchangelib's wire bodies and aiosqlite's statement values carry private meetings' subjects.
    out = io.StringIO()
    logs.setup_logging("debug", "text", debug=True, stream=out)
    logging.getLogger("exchangelib.util.xml").debug("Response XML: <t:Subject>Salary talk</t:Subject>")
    logging.getLogger("aiosqlite").debug("executing ('Salary talk',)")
    logging.getLogger("exchangelib.protocol").debug("session renewed")
    assert "Salary talk" not in out.getvalue() and "session renewed" in out.getvalue()
    assert set(logs.CONTENT_TRACES) == {"exchangelib.util.xml", "aiosqlite"}
