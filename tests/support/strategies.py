"""Hypothesis strategies for the shared data model (hostile text included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from pbxsync.sync.model import Attendee, AttendeeKind, Contact, Occurrence, PhoneKind, PhoneNumber, ResponseType

# Any unicode except surrogates (SQLite stores UTF-8), including control characters and NUL.
hostile_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
ids = st.text("abcdefABCDEF0123456789=+/", min_size=1, max_size=12)
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                        timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))

phones = st.builds(PhoneNumber, kind=st.sampled_from(PhoneKind), raw=hostile_text,
                   e164=st.none() | st.from_regex(r"\+[1-9][0-9]{6,13}", fullmatch=True),
                   digits=st.from_regex(r"[0-9]{0,15}", fullmatch=True))

contacts = st.builds(Contact, item_id=ids, change_key=ids, display_name=hostile_text, given_name=hostile_text,
                     surname=hostile_text, company=hostile_text, title=hostile_text,
                     emails=st.lists(hostile_text, max_size=3).map(tuple),
                     phones=st.lists(phones, max_size=4).map(tuple))

attendees = st.builds(Attendee, email=hostile_text, name=hostile_text, kind=st.sampled_from(AttendeeKind),
                      response=st.sampled_from(ResponseType))


@st.composite
def occurrences(draw: st.DrawFn) -> Occurrence:
    start = draw(instants)
    return Occurrence(
        item_id=draw(ids), change_key=draw(ids), uid=draw(ids), start=start,
        end=start + timedelta(minutes=draw(st.integers(0, 60 * 48))),
        timezone=draw(st.sampled_from(["UTC", "Europe/Berlin", "W. Europe Standard Time"])),
        recurrence_id=draw(st.none() | st.just(start)), series_item_id=draw(st.just("") | ids),
        subject=draw(hostile_text), location=draw(hostile_text), organizer_email=draw(hostile_text),
        organizer_name=draw(hostile_text), attendees=tuple(draw(st.lists(attendees, max_size=4))),
        is_cancelled=draw(st.booleans()), is_all_day=draw(st.booleans()),
    )
