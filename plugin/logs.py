"""Logging for the CLI and the daemon: text or JSON lines, and a redaction net for secrets.

`Secret` already hides itself in repr/str, but a secret can still reach a log line by another path
(an exception message quoting a URL, a library logging a header). Every value registered here is
scrubbed from the final message, the traceback text and any extra fields before a handler writes it.
`setup_logging` registers every `Secret` in the config, so nothing else needs to remember to.
Credentials we never see as config values (the base64 of user:password in `Authorization: Basic`, NTLM
and Negotiate tokens, session cookies) are caught by their header name instead, in whatever shape a
library prints headers: `Name: value` lines, dict reprs, JSON, escaped bytes. Text lines escape control
characters, so a hostile value (a contact name, a dialplan argument) cannot forge a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from typing import IO, Any

from pbxsync.sync.secrets import Secret

REDACTED = "***"
# Shorter values would scrub ordinary words and digits out of every line; a secret this short is
# not a secret anyway (and the config loader's Secret still hides it in repr/str).
MIN_SECRET_LENGTH = 4

CONTENT_TRACES = ("exchangelib.util.xml", "aiosqlite")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# Attributes every LogRecord has; anything else was passed through `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# A credential header's name, its separator as any printer writes it ("Authorization: x", "'Cookie': 'x'",
# "authorization=x"), then the value up to the end of the line, a quote, or an escaped "\r\n". No word
# boundary before the name: in a bytes repr it follows the letter n of an escaped "\r\n".
_CREDENTIAL_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization|(?:set-)?cookie|www-authenticate|x-[a-z-]*(?:token|key|secret))"
    r"""(['"]?\s*[:=]\s*(?:b?['"])?)([^'"\r\n\\]+)""")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | Secret) -> None:
    """Remember a value that must never appear in a log line."""
    text = value.reveal() if isinstance(value, Secret) else value
    if len(text) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(text)


def register_config_secrets(config: object) -> int:
    """Register every `Secret` found anywhere in a config tree; returns how many were found."""
    found = 0
    stack: list[object] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, Secret):
            if node:
                register_secret(node)
                found += 1
        elif is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in fields(node))
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return found


def forget_secrets() -> None:
    """For tests: start again with no registered secrets."""
    with _secrets_lock:
        _secrets.clear()


def redact(text: str) -> str:
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: one secret may contain another
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    return _CREDENTIAL_HEADER.sub(lambda m: m[1] + m[2] + REDACTED, text)


def escape_control(text: str) -> str:
    """One line stays one line: "\n" -> "\\n", other control characters -> "\\xNN"."""
    return _CONTROL_CHARS.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m[0], f"\\x{ord(m[0]):02x}"),
                              text)


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


class RedactionFilter(logging.Filter):
    """Scrubs registered secrets from a record; attached to every handler so no logger escapes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)  # formatters print exc_text when it is set
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _redact_value(value))
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`2026-11-27T09:00:00.123Z INFO  pbxsync.daemon: message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"{stamp} {record.levelname:<7} {record.name}: {escape_control(record.getMessage())}"
        extra = _extra_fields(record)
        if extra:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in sorted(extra.items()))
        if record.exc_text:
            line += "\n" + record.exc_text
        elif record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="') or _CONTROL_CHARS.search(text):
        return json.dumps(text, ensure_ascii=False)  # JSON escapes every control character
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, every `extra=` field, and exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            doc.setdefault(key, value)
        if record.exc_text:
            doc["exc"] = record.exc_text
        elif record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class ExitSafeStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that drops records once it has been closed.

    `logging.shutdown()` closes every handler at interpreter exit. Objects finalised after that still log
    (exchangelib's `Protocol.__del__` logs "Closing sessions" while the interpreter tears its modules
    down); formatting such a record can no longer import what it needs, and logging would print a
    "--- Logging error ---" traceback at the end of every `pbxsync --debug` run. Nobody reads a line
    written after exit, so it is dropped before the filters and the formatter run.
    """

    exited = False

    def close(self) -> None:
        self.exited = True
        super().close()

    def handle(self, record: logging.LogRecord) -> bool:
        if self.exited:
            return False
        return super().handle(record)


class StderrHandler(ExitSafeStreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record (it may be replaced or closed later)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def level_from(name: str, debug: bool = False) -> int:
    if debug:
        return logging.DEBUG
    return _LEVELS.get(name.lower(), logging.INFO)


def setup_logging(level: str = "info", fmt: str = "text", *, debug: bool = False,
                  config: object | None = None, stream: IO[str] | None = None) -> logging.Handler:
    """Configure the root logger once for the process (replacing what an earlier call installed).

    `level`/`fmt` come from `[log]`; `--debug` and `--log-format` override them at the call site.
    Library loggers below WARNING are quietened unless debugging, so an operator sees pbxsync's lines.
    """
    if config is not None:
        register_config_secrets(config)
    handler: logging.Handler = ExitSafeStreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactionFilter())
    handler.set_name("pbxsync")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "pbxsync"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_from(level, debug))
    noisy_level = logging.DEBUG if debug else logging.WARNING
    for name in ("exchangelib", "urllib3", "requests_ntlm", "apscheduler", "panoramisk", "msal", "aiosqlite",
                 "asyncio"):
        logging.getLogger(name).setLevel(max(noisy_level, root.level))
    # Traces that copy mailbox content into the log at DEBUG (exchangelib's request and response bodies,
    # aiosqlite's statements with their values), the subjects of private meetings among it: never
    # logged, not even with --debug.
    for name in CONTENT_TRACES:
        logging.getLogger(name).setLevel(logging.INFO)
    return handler


def setup_from_config(config: Any, *, debug: bool = False, log_format: str | None = None,
                      stream: IO[str] | None = None) -> logging.Handler:
    """The one call the CLI and the daemon make: `[log]` overridden by --debug / --log-format."""
    return setup_logging(config.log.level, log_format or config.log.format, debug=debug, config=config,
                         stream=stream)
