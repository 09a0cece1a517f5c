"""Time zones and relative times of the simulated mailboxes.

Zones are given as IANA ids ("Europe/Berlin") or Windows ids ("W. Europe Standard Time"), as Exchange
accepts both; EWS wants the Windows spelling on the wire. The data file's times may be relative to an
injected `now` ("now+20s", "today+1d 09:00"), so a test's meetings always lie where the test needs them.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP


def resolve_timezone(zone_id: str) -> ZoneInfo:
    """IANA or Windows zone id -> ZoneInfo; ValueError for an unknown id."""
    iana = MS_TIMEZONE_TO_IANA_MAP.get(zone_id, zone_id)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone_id!r} (use an IANA or Windows zone id)") from None


def windows_timezone_id(zone_id: str) -> str:
    if zone_id in MS_TIMEZONE_TO_IANA_MAP:
        return zone_id
    key = resolve_timezone(zone_id).key
    mapped = IANA_TO_MS_TIMEZONE_MAP.get(key)
    return mapped[0] if mapped else "UTC"


_OFFSET_RE = re.compile(r"([+-])(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NOW_RE = re.compile(r"^now((?:[+-]\d+[smhdw])*)$")
_TODAY_RE = re.compile(r"^today((?:[+-]\d+[dw])*)(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _offset(text: str) -> timedelta:
    total = 0
    for sign, amount, unit in _OFFSET_RE.findall(text):
        total += (1 if sign == "+" else -1) * int(amount) * _UNIT_SECONDS[unit]
    return timedelta(seconds=total)


def parse_time(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """A data-file time -> aware datetime in `tz`.

    "now", "now+20s", "now-1h+30m": an instant relative to `now`.
    "today 09:00", "today+1d 09:00", "today-2d": a wall-clock time in `tz` on a day relative to today.
    "2026-11-27T09:00" (wall clock in `tz`), "2026-11-27T08:00:00Z" / "+01:00" (an instant),
    "2026-11-27" (midnight in `tz`).
    """
    text = text.strip()
    if m := _NOW_RE.match(text):
        return (now + _offset(m[1])).astimezone(tz).replace(microsecond=0)
    if m := _TODAY_RE.match(text):
        day = now.astimezone(tz).date() + _offset(m[1])
        wall = time(int(m[2] or 0), int(m[3] or 0), int(m[4] or 0))
        if m[2] is not None and not (0 <= int(m[2]) < 24):
            raise ValueError(f"bad hour in {text!r}")
        return datetime.combine(day, wall, tz)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {text!r}: use ISO 8601, 'now+20s' or 'today+1d 09:00'") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed.astimezone(tz)
