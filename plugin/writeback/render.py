"""The "Join by phone" block and where it lives in a meeting body: pure text in, text out.

Rules (tests/unit/test_writeback_render.py reads as these):
- The block sits between two markers that carry the same tag: the first 16 hex digits of the SHA-256 of
  the block's lines. A begin marker and an end marker with the same tag, in that order, are ours; what
  lies between them is replaced. Anything else that looks like a marker (typed by someone, a begin
  without its end, an end before its begin, a pair with different tags) is the organizer's text and is
  left exactly as it is.
- Only the first pair is ours: a copy of the block pasted further down is the organizer's.
- Outside our pair the body is never changed, byte for byte. A new block goes before the last `</body>`
  of an HTML body (at the end when it has none: broken HTML is not repaired), at the end of a text body
  after one blank line; removing a block removes exactly what adding it inserted.
- A body longer than MAX_BODY_CHARS is not rewritten (`BodyTooLarge`): a meeting carrying megabytes is
  not worth the risk of sending it back.
- Every value shown is escaped in HTML; the block holds no subject, so a private meeting leaks nothing.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from pbxsync.plugin.booking.dial_in import outside_dial_in
from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.sources.graph_mapping import zone_for

MAX_BODY_CHARS = 1_000_000
_TAG = r"([0-9a-f]{16})"
_TEXT_BEGIN = "=== pbxsync: join by phone {tag} ==="
_TEXT_END = "=== pbxsync: end {tag} ==="
_HTML_BEGIN = "<!-- pbxsync:join-by-phone {tag} -->"
_HTML_END = "<!-- /pbxsync:join-by-phone {tag} -->"
_BEGIN = {False: re.compile(re.escape(_TEXT_BEGIN).replace(re.escape("{tag}"), _TAG)),
          True: re.compile(re.escape(_HTML_BEGIN).replace(re.escape("{tag}"), _TAG))}
_END = {False: _TEXT_END, True: _HTML_END}
_TEXT_GAP = "\n\n"  # between the organizer's text and a block added at the end of a text body
_HTML_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class BodyTooLarge(ValueError):
    """The body is longer than MAX_BODY_CHARS: pbxsync does not rewrite it."""


@dataclass(frozen=True)
class JoinDetails:
    """What the block says about one booking."""

    room: str
    pin: str | None
    autocall: bool
    start: datetime
    end: datetime
    timezone: str  # the meeting's zone id (IANA or Windows; one nobody knows is shown as UTC)
    dial_in_numbers: tuple[str, ...] = ()
    dial_in_room: str = "dtmf"  # "dtmf" | "direct" ([pbx] dial_in_room)


def _zone(name: str) -> tuple[tzinfo, str]:
    """The meeting's zone (IANA or Windows id, as Exchange names it) and its label; UTC when unknown."""
    try:
        return zone_for(name), name
    except SourceDataError:
        return UTC, "UTC"


def block_lines(details: JoinDetails) -> list[str]:
    """The block's lines, without markers, in the order people read them."""
    lines = ["Join by phone"]
    lines += outside_dial_in(details.dial_in_numbers, details.room, details.dial_in_room)
    lines.append(f"From a company phone: {details.room}")
    if details.pin:
        lines.append(f"PIN: {details.pin}")
    if details.autocall:
        lines.append("The PBX will call you at the start.")
    zone, zone_name = _zone(details.timezone)
    start, end = details.start.astimezone(zone), details.end.astimezone(zone)
    until = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M")
    lines.append(f"Booked for {start.strftime('%Y-%m-%d %H:%M')}-{until} ({zone_name})")
    return lines


def block_tag(details: JoinDetails) -> str:
    """The markers' tag: names this exact content, so an intact block is recognised without a write."""
    return hashlib.sha256("\n".join(block_lines(details)).encode("utf-8")).hexdigest()[:16]


def render_block(details: JoinDetails, is_html: bool) -> str:
    """The block with its markers, as it goes into a text or an HTML body."""
    tag = block_tag(details)
    lines = block_lines(details)
    if not is_html:
        return "\n".join([_TEXT_BEGIN.format(tag=tag), *lines, _TEXT_END.format(tag=tag)])
    title, *rest = (html.escape(line) for line in lines)
    inner = f"<p><b>{title}</b><br>" + "<br>".join(rest) + "</p>"
    return (f"{_HTML_BEGIN.format(tag=tag)}<div id=\"pbxsync-join-by-phone\">{inner}</div>"
            f"{_HTML_END.format(tag=tag)}")


def find_block(body: str, is_html: bool) -> tuple[int, int, str] | None:
    """(start, end, tag) of our block: the first begin marker whose end marker (same tag) follows it with no
    begin marker of any tag in between (a stray copy of a begin line pairs with nothing, and a stray pair
    around our block is not taken for it)."""
    for begin in _BEGIN[is_html].finditer(body):
        tag = begin.group(1)
        end_marker = _END[is_html].format(tag=tag)
        end = body.find(end_marker, begin.end())
        if end >= 0 and _BEGIN[is_html].search(body, begin.end(), end) is None:
            return begin.start(), end + len(end_marker), tag
    return None


def has_block(body: str, is_html: bool, details: JoinDetails) -> bool:
    """True when the body already holds exactly this block (nothing to write)."""
    found = find_block(body, is_html)
    return found is not None and body[found[0]:found[1]] == render_block(details, is_html)


def apply_block(body: str, is_html: bool, details: JoinDetails | None) -> str:
    """The body with our block set to `details` (added, replaced) or removed (None); the rest untouched."""
    if len(body) > MAX_BODY_CHARS:
        raise BodyTooLarge(f"the meeting body has {len(body)} characters (more than {MAX_BODY_CHARS})")
    found = find_block(body, is_html)
    block = render_block(details, is_html) if details is not None else None
    if found is not None:
        start, end, _ = found
        if block is not None:
            return body[:start] + block + body[end:]
        if not is_html and body[:start].endswith(_TEXT_GAP) and not body[end:]:
            start -= len(_TEXT_GAP)  # the gap we put before a block at the end goes with it
        return body[:start] + body[end:]
    if block is None:
        return body
    if is_html:
        ends = list(_HTML_BODY_END.finditer(body))
        at = ends[-1].start() if ends else len(body)
        return body[:at] + block + body[at:]
    return body + _TEXT_GAP + block if body else block
