"""AMI wire format: the incremental decoder, the action encoder and the validators of hostile values.

Pure code, no IO. Facts it relies on (all visible in tests/data/ami-transcripts/):
- the server opens with one banner line `Asterisk Call Manager/11.0.0` and NO blank line after it;
- every message is `Key: Value` lines ended by CRLF and closed by an empty CRLF line; keys repeat
  (`Output:`), so headers are an ordered list, never a dict;
- response vs event is decided by the FIRST header (`OriginateResponse` carries a `Response:` header
  too, but starts with `Event:`).

Why not panoramisk's parser: `AMIProtocol.data_received` decodes each TCP chunk on its own with
`errors="ignore"` (a multibyte character split over two reads vanishes), `Message.from_line` turns headers
into a dict keyed by name and classifies by "has a Response key", and `Action.__str__` sorts the headers
and writes values unchecked (a CR/LF in a value smuggles headers or whole actions).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pbxsync.sync.errors import ValidationError

EOL = "\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"
MAX_VALUE_CHARS = 1024  # no legitimate AMI value we send is longer; a 100 KB subject is refused
MAX_BUFFERED_CHARS = 1_000_000  # a peer that never ends a message cannot grow our memory beyond this

_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Dial strings are an allow-list: a tech, a slash, a resource of plain dialable characters. This keeps out
# `&` (a second target), `,` (Dial options), `${` (expansion), `(`/`)` (functions), quotes and spaces.
_DIAL_STRING = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}/[A-Za-z0-9*#+][A-Za-z0-9*#+_.@-]{0,79}$")
_EXTENSION = re.compile(r"^[0-9A-Za-z*#+][0-9A-Za-z*#+-]{0,31}$")
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ROOM = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,31}$")


@dataclass(frozen=True)
class AmiMessage:
    """One AMI message with its headers in wire order (names may repeat)."""

    headers: tuple[tuple[str, str], ...]

    @property
    def first_key(self) -> str:
        return self.headers[0][0].lower() if self.headers else ""

    @property
    def is_response(self) -> bool:
        return self.first_key == "response"

    @property
    def is_event(self) -> bool:
        return self.first_key == "event"

    @property
    def name(self) -> str:
        """The event name for an event, the response status (Success, Error, ...) for a response."""
        return self.headers[0][1] if self.headers else ""

    @property
    def action_id(self) -> str:
        return self.get("ActionID")

    def get(self, key: str, default: str = "") -> str:
        wanted = key.lower()
        for k, v in self.headers:
            if k.lower() == wanted:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        wanted = key.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    def has(self, key: str) -> bool:
        wanted = key.lower()
        return any(k.lower() == wanted for k, _ in self.headers)

    def keys(self) -> list[str]:
        return [k for k, _ in self.headers]

    def encode(self) -> bytes:
        return (EOL.join(f"{k}: {v}" for k, v in self.headers) + EOL + EOL).encode("utf-8")

    @classmethod
    def of(cls, *headers: tuple[str, str]) -> AmiMessage:
        return cls(tuple(headers))


class AmiDecoder:
    """Bytes in, messages out; keeps state across TCP reads (split lines, split UTF-8 sequences).

    Undecodable bytes become U+FFFD instead of vanishing, a line without a colon is counted as garbage
    and skipped, and a buffer that grows past MAX_BUFFERED_CHARS without a line end is dropped.
    """

    def __init__(self, expect_banner: bool = True) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._lines: list[tuple[str, str]] = []
        self._expect_banner = expect_banner
        self.banner: str | None = None
        self.garbage_lines = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._pending += self._utf8.decode(data)
        out: list[AmiMessage] = []
        while True:
            cut = self._pending.find("\n")
            if cut < 0:
                break
            line = self._pending[:cut]
            self._pending = self._pending[cut + 1:]
            if line.endswith("\r"):
                line = line[:-1]
            self._line(line, out)
        if len(self._pending) > MAX_BUFFERED_CHARS:
            self._pending = ""
            self._lines = []
            self.garbage_lines += 1
        return out

    def _line(self, line: str, out: list[AmiMessage]) -> None:
        if (self._expect_banner and self.banner is None and not self._lines
                and line.startswith(BANNER_PREFIX) and ": " not in line):
            self.banner = line
            return
        if line == "":
            if self._lines:
                out.append(AmiMessage(tuple(self._lines)))
                self._lines = []
            return
        key, sep, value = line.partition(":")
        if not sep or not _HEADER_NAME.match(key):
            self.garbage_lines += 1
            return
        self._lines.append((key, value[1:] if value.startswith(" ") else value))


def check_value(name: str, value: str) -> str:
    """Refuse CR, LF and NUL (header/action smuggling) and oversized values. The value is never echoed."""
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValidationError(f"AMI header {name}: value contains a line break or NUL; refused")
    if len(value) > MAX_VALUE_CHARS:
        raise ValidationError(f"AMI header {name}: value is {len(value)} characters (limit {MAX_VALUE_CHARS})")
    return value


def encode_action(action: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """`Action: X` then the headers in the given order, each validated before a single byte is produced."""
    if not _HEADER_NAME.match(action):
        raise ValidationError("AMI action name is not a plain word; refused")
    lines = [f"Action: {action}"]
    for key, value in headers:
        if not _HEADER_NAME.match(key):
            raise ValidationError("AMI header name is not a plain word; refused")
        if key.lower() == "action":
            raise ValidationError("AMI header Action may only be given once")
        lines.append(f"{key}: {check_value(key, value)}")
    return (EOL.join(lines) + EOL + EOL).encode("utf-8")


def variable_headers(variables: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """One `Variable: NAME=value` header per variable.

    Asterisk splits a Variable value on commas into several assignments, so a comma in a value would set
    a variable we never meant to; values with a comma (or `${`, which only a hostile caller needs) are refused.
    """
    items = variables.items() if isinstance(variables, Mapping) else variables
    out: list[tuple[str, str]] = []
    for name, value in items:
        if not _VARIABLE_NAME.match(name):
            raise ValidationError("channel variable name is not a plain identifier; refused")
        if "," in value or "${" in value or "$[" in value:
            raise ValidationError(f"channel variable {name}: value contains ',' or an expression; refused")
        check_value(f"Variable {name}", value)
        out.append(("Variable", f"{name}={value}"))
    return out


def validate_extension(extension: str) -> str:
    if not _EXTENSION.match(extension):
        raise ValidationError("extension is not a plain dialable number/name; refused")
    return extension


def validate_room(room: str) -> str:
    if not _ROOM.match(room):
        raise ValidationError("conference room is not a plain number/name; refused")
    return room


def validate_channel_id(channel_id: str) -> str:
    if not _CHANNEL_ID.match(channel_id):
        raise ValidationError("ChannelId must be 1-63 characters of letters, digits, '.', '_' or '-'")
    return channel_id


def validate_dial_string(dial: str) -> str:
    if not _DIAL_STRING.match(dial):
        raise ValidationError(
            "dial string must look like TECH/resource with only letters, digits, * # + _ . @ -; refused")
    return dial


def render_dial(template: str, extension: str) -> str:
    """Fill `{extension}` into the configured dial template ("PJSIP/{extension}") and check the result."""
    if template.count("{extension}") != 1:
        raise ValidationError("pbx.dial must contain {extension} exactly once")
    return validate_dial_string(template.replace("{extension}", validate_extension(extension)))


_CALLERID_KEEP = re.compile(r"[^\w .:/+-]", re.UNICODE)


def sanitize_callerid_name(text: str, limit: int = 40, fallback: str = "Meeting") -> str:
    """A meeting subject (or a contact's name) reduced to something safe to show on a phone display.

    Drops quotes, angle brackets, commas, semicolons, `$`, braces, control characters and anything else
    outside letters, digits, space and `. : / + -`; collapses runs of spaces; cuts to `limit` characters.
    Nothing left: `fallback` (a trusted value, not sanitised again).
    """
    cleaned = _CALLERID_KEEP.sub(" ", text[: limit * 8])
    cleaned = " ".join(cleaned.replace("_", " ").split())
    return cleaned[:limit].strip() or fallback


def callerid(name: str, number: str) -> str:
    """`Name <number>` for the Originate CallerID header; both parts sanitised/validated."""
    return f"{sanitize_callerid_name(name)} <{validate_room(number)}>"
