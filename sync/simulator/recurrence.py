"""Recurring meetings expanded into the occurrences a calendar view shows.

Recurrence happens in the meeting's own time zone (wall clock), so an occurrence after a DST change
keeps its local time. Cancelled occurrences are left out; moved ones ("exception") keep their original
start as RecurrenceId and their id (`ids.occurrence_item_id`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from pbxsync.sync.simulator.ids import occurrence_change_key, occurrence_item_id
from pbxsync.sync.simulator.records import MeetingRecord, OccurrenceView, Recurrence

MAX_EXPANDED_OCCURRENCES = 5000  # per series and view; a guard against "daily forever" over a long window


def _series_starts(meeting: MeetingRecord, until_utc: datetime) -> Iterator[datetime]:
    """Original starts of a series (aware, in the meeting zone), in order, up to `until_utc`."""
    rec = meeting.recurrence
    assert rec is not None
    tz = meeting.tz
    first = meeting.start.astimezone(tz)
    wall = first.timetz().replace(tzinfo=None)
    for produced, day in enumerate(_recurrence_days(rec, first.date())):
        if (rec.count and produced >= rec.count) or produced >= MAX_EXPANDED_OCCURRENCES:
            return
        if rec.until and day > rec.until:
            return
        moment = datetime.combine(day, wall, tz)
        if moment.astimezone(UTC) >= until_utc:
            return
        yield moment


def _recurrence_days(rec: Recurrence, first: date) -> Iterator[date]:
    """Every day the pattern names from `first` on, endlessly; the caller applies until/count/window."""
    if rec.pattern == "daily":
        day = first
        while True:
            yield day
            day += timedelta(days=rec.interval)
    weekdays = sorted(rec.days or (first.weekday(),))
    week_start = first - timedelta(days=first.weekday())
    while True:
        for weekday in weekdays:
            day = week_start + timedelta(days=weekday)
            if day >= first:
                yield day
        week_start += timedelta(weeks=rec.interval)


def expand(meeting: MeetingRecord, start: datetime, end: datetime) -> list[OccurrenceView]:
    """The meeting's entries overlapping [start, end) (aware datetimes)."""
    if meeting.recurrence is None:
        if meeting.start < end and meeting.end > start:
            return [OccurrenceView(meeting.item_id, meeting.change_key, "single", meeting, meeting.start,
                                   meeting.end, None, meeting.subject, meeting.location)]
        return []
    duration = meeting.end - meeting.start
    # an occurrence moved earlier can fall into the window although its original start lies after it
    pulled_forward = max((e.original_start - e.start for e in meeting.exceptions if e.start),
                         default=timedelta())
    horizon = end.astimezone(UTC) + max(timedelta(), pulled_forward)
    out: list[OccurrenceView] = []
    for original in _series_starts(meeting, horizon):
        exc = meeting.exception_for(original)
        if exc and exc.cancelled:
            continue
        occ_start = exc.start if exc and exc.start else original
        occ_end = exc.end if exc and exc.end else occ_start + duration
        if not (occ_start < end and occ_end > start):
            continue
        out.append(OccurrenceView(
            item_id=occurrence_item_id(meeting.item_id, original),
            change_key=occurrence_change_key(meeting.change_key, original),
            kind="exception" if exc else "occurrence",
            master=meeting,
            start=occ_start,
            end=occ_end,
            original_start=original,
            subject=exc.subject if exc and exc.subject is not None else meeting.subject,
            location=exc.location if exc and exc.location is not None else meeting.location,
        ))
    return out


def series_occurrence(meeting: MeetingRecord, original_start_utc: datetime) -> OccurrenceView | None:
    """The (not cancelled) occurrence of a series whose original start is `original_start_utc`."""
    if meeting.recurrence is None:
        return None
    for original in _series_starts(meeting, original_start_utc + timedelta(seconds=1)):
        if original.astimezone(UTC) == original_start_utc.astimezone(UTC):
            exc = meeting.exception_for(original)
            lo = exc.start if exc and exc.start else original
            hi = (exc.end if exc and exc.end else lo + (meeting.end - meeting.start))
            found = expand(meeting, lo, hi + timedelta(seconds=1))
            return next((o for o in found if o.original_start == original), None)
    return None
