"""The notice texts: templates per language, shipped in pbxsync.plugin.notices.templates (`en`, `de`) and
overridable file by file from `[meetings] notices_templates`.

Files, per language LANG: `rejected.LANG.txt` and `cancelled.LANG.txt` (first line `Subject: ...`, a blank
line, then the plain-text body) and `reasons.LANG.toml` (a table per reason code with `why` and `fix`).
Placeholders are `string.Template`'s: ${name}, ${subject}, ${when}, ${why}, ${fix}; in reasons, ${reason}.

Every value comes from Exchange and is hostile. Substitution is one pass (a `$` in a subject stays text),
values are made one line (control characters, CR, LF and Unicode line separators become spaces: a subject
cannot add a header) and cut short (a 10 MB subject becomes 200 characters). Text only, no HTML: nothing
to escape, nothing a meeting subject could inject.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo

from pbxsync.plugin.notices.plan import NoticeKind, split_reason
from pbxsync.plugin.notices.reasons import CODES, OTHER_CODE
from pbxsync.sync.errors import SourceDataError, UserError
from pbxsync.sync.sources.graph_mapping import zone_for

SHIPPED = "pbxsync.plugin.notices.templates"
SHIPPED_LANGUAGES = ("en", "de")
MAX_SUBJECT = 255  # of the notice's own subject line
MAX_VALUE = {"subject": 200, "name": 100, "reason": 300}
_LOOK_AT = 4096  # of a hostile value, only this much is even looked at


class NoticeTemplateError(UserError):
    """A template is missing or unreadable: one line naming the file."""


def one_line(text: str, limit: int) -> str:
    """`text` as one printable line of at most `limit` characters."""
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in text[:_LOOK_AT]).split())
    return clean if len(clean) <= limit else clean[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class NoticeFacts:
    """What a notice says about one booking; every field as Exchange gave it (hostile)."""

    name: str  # the organizer's name (else their address)
    subject: str  # the booking's subject (the placeholder for a private meeting)
    start: datetime
    end: datetime
    timezone: str  # the meeting's time zone, as Exchange named it
    reason: str  # the PBX's own reason text (told only for reasons without a text of their own)


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    body: str


@dataclass(frozen=True)
class _Message:
    subject: Template
    body: Template


def _zone(name: str) -> ZoneInfo | None:
    """The meeting's zone: stored as Exchange named it, a Windows name ("W. Europe Standard Time") or IANA."""
    if not name or len(name) > 64 or ".." in name or name.startswith("/"):
        return None
    try:
        return zone_for(name)
    except SourceDataError:
        return None


def format_when(start: datetime, end: datetime, timezone: str) -> str:
    """"2026-12-04 10:00-11:00 (Europe/Berlin)" in the meeting's zone when it is a known zone, else UTC."""
    zone = _zone(timezone)
    label = zone.key if zone is not None else "UTC"
    local_start, local_end = start.astimezone(zone or UTC), end.astimezone(zone or UTC)
    until = local_end.strftime("%H:%M" if local_end.date() == local_start.date() else "%Y-%m-%d %H:%M")
    return f"{local_start:%Y-%m-%d %H:%M}-{until} ({label})"


class NoticeTemplates:
    """The texts of one language, read once (at start and on reload)."""

    def __init__(self, language: str, directory: str = "") -> None:
        self.language = language
        self.directory = directory
        self.messages = {kind: self._message(f"{kind.value}.{language}.txt") for kind in NoticeKind}
        self.reasons = self._reasons(f"reasons.{language}.toml")

    def _read(self, name: str) -> str:
        try:
            if self.directory and (Path(self.directory) / name).is_file():
                return (Path(self.directory) / name).read_text(encoding="utf-8")
            shipped = resources.files(SHIPPED).joinpath(name)
            if shipped.is_file():
                return shipped.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NoticeTemplateError(f"notice template {name}: cannot read it ({exc})") from None
        where = f"{self.directory} or the shipped templates" if self.directory else "the shipped templates"
        raise NoticeTemplateError(f"notice template {name}: not in {where} (shipped languages: "
                                  f"{', '.join(SHIPPED_LANGUAGES)})")

    def _message(self, name: str) -> _Message:
        head, _, body = self._read(name).partition("\n")
        if not head.startswith("Subject:") or not body.startswith("\n"):
            raise NoticeTemplateError(f"notice template {name}: the first line must be \"Subject: ...\", "
                                      "then a blank line, then the body")
        return _Message(Template(head.removeprefix("Subject:").strip()), Template(body[1:]))

    def _reasons(self, name: str) -> dict[str, tuple[str, str]]:
        try:
            data = tomllib.loads(self._read(name))
        except tomllib.TOMLDecodeError as exc:
            raise NoticeTemplateError(f"notice template {name}: TOML syntax: {exc}") from None
        found: dict[str, tuple[str, str]] = {}
        for code in CODES:
            entry = data.get(code)
            if not isinstance(entry, dict) or not isinstance(entry.get("why"), str) \
                    or not isinstance(entry.get("fix"), str):
                raise NoticeTemplateError(f"notice template {name}: [{code}] needs the strings why and fix")
            found[code] = (entry["why"], entry["fix"])
        return found

    def render(self, reason: str, facts: NoticeFacts) -> RenderedNotice:
        """The notice for `reason` ("<kind>:<code>" of plugin/notices/plan.py) about `facts`."""
        kind, code = split_reason(reason)
        why, fix = self.reasons.get(code, self.reasons[OTHER_CODE])
        told_reason = one_line(facts.reason, MAX_VALUE["reason"])
        values = {
            "name": one_line(facts.name, MAX_VALUE["name"]),
            "subject": one_line(facts.subject, MAX_VALUE["subject"]) or "-",
            "when": format_when(facts.start, facts.end, facts.timezone),
            "why": Template(why).safe_substitute(reason=told_reason),
            "fix": Template(fix).safe_substitute(reason=told_reason),
        }
        message = self.messages[kind]
        return RenderedNotice(one_line(message.subject.safe_substitute(values), MAX_SUBJECT),
                              message.body.safe_substitute(values))
