"""Presence rules (plugin.presence.state, plugin.presence.asterisk): the state of a user at time t."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.presence.asterisk import (
    MAX_MESSAGE_BYTES,
    Templates,
    asterisk_presence,
    presence_value,
    setvar_actions,
    until_text,
)
from pbxsync.plugin.presence.state import FREE, BusyItem, UserState, next_change, state_at, transitions
from pbxsync.sync.errors import ValidationError
from pbxsync.sync.model import ShowAs, show_as_from

DAY = datetime(2026, 11, 27, tzinfo=UTC)
BUSY = frozenset({ShowAs.BUSY, ShowAs.OOF})
BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


def item(start: datetime, end: datetime, show_as: ShowAs = ShowAs.BUSY, **kw: bool) -> BusyItem:
    return BusyItem(start, end, show_as, **kw)


def test_a_busy_meeting_makes_its_owner_busy_from_start_inclusive_to_end_exclusive() -> None:
    items = [item(at(10), at(11))]
    assert state_at(items, at(9, 59), BUSY) == FREE
    assert state_at(items, at(10), BUSY) == UserState(True, ShowAs.BUSY, at(11))
    assert state_at(items, at(10, 59), BUSY).busy
    assert state_at(items, at(11), BUSY) == FREE


def test_free_tentative_and_working_elsewhere_do_not_count_unless_configured() -> None:
    for show_as in (ShowAs.FREE, ShowAs.TENTATIVE, ShowAs.WORKING_ELSEWHERE, ShowAs.UNKNOWN):
        assert state_at([item(at(10), at(11), show_as)], at(10), BUSY) == FREE
    with_tentative = BUSY | {ShowAs.TENTATIVE}
    assert state_at([item(at(10), at(11), ShowAs.TENTATIVE)], at(10), with_tentative).busy


def test_cancelled_and_declined_items_never_make_anyone_busy() -> None:
    assert state_at([item(at(10), at(11), cancelled=True)], at(10), BUSY) == FREE
    assert state_at([item(at(10), at(11), declined=True)], at(10), BUSY) == FREE


def test_back_to_back_meetings_are_one_busy_block_without_a_flap_at_the_seam() -> None:
    items = [item(at(10), at(11)), item(at(11), at(11, 30)), item(at(11, 30), at(12))]
    assert state_at(items, at(10), BUSY).until == at(12)
    assert next_change(items, at(10), BUSY) == at(12)
    assert transitions(items, at(9), at(13), BUSY) == [(at(10), UserState(True, ShowAs.BUSY, at(12))),
                                                       (at(12), FREE)]


def test_overlapping_meetings_last_until_the_latest_end() -> None:
    items = [item(at(10), at(12)), item(at(11), at(13)), item(at(14), at(15))]
    assert state_at(items, at(10, 30), BUSY).until == at(13)
    assert [t for t, _ in transitions(items, at(9), at(16), BUSY)] == [at(10), at(13), at(14), at(15)]


def test_out_of_office_wins_over_busy_and_shows_as_away() -> None:
    items = [item(at(0), at(0) + timedelta(days=1), ShowAs.OOF), item(at(10), at(11))]
    state = state_at(items, at(10, 30), BUSY)
    assert state.show_as is ShowAs.OOF and state.until == at(0) + timedelta(days=1)
    presence = asterisk_presence(state, at(10, 30), Templates(), UTC)
    assert (presence.device_state, presence.presence) == ("BUSY", "away")
    assert presence.message == "Out of office until 2026-11-28 00:00"


def test_an_all_day_out_of_office_is_busy_all_day_with_one_change_at_each_end() -> None:
    items = [item(DAY, DAY + timedelta(days=1), ShowAs.OOF)]
    assert [t for t, _ in transitions(items, DAY - timedelta(hours=1), DAY + timedelta(days=2), BUSY)] == [
        DAY, DAY + timedelta(days=1)]


def test_a_meeting_inside_a_longer_one_changes_nothing() -> None:
    items = [item(at(9), at(17)), item(at(10), at(11))]
    assert transitions(items, at(8), at(18), BUSY) == [(at(9), UserState(True, ShowAs.BUSY, at(17))),
                                                       (at(17), FREE)]


def test_the_shown_status_changes_when_a_stronger_one_starts_inside_a_block() -> None:
    items = [item(at(9), at(12)), item(at(10), at(11), ShowAs.OOF)]
    changes = transitions(items, at(8), at(13), BUSY)
    assert [(t, s.show_as) for t, s in changes] == [(at(9), ShowAs.BUSY), (at(10), ShowAs.OOF),
                                                    (at(11), ShowAs.BUSY), (at(12), ShowAs.FREE)]


def test_nothing_ahead_means_no_next_change() -> None:
    assert next_change([item(at(8), at(9))], at(10), BUSY) is None
    assert next_change([], at(10), BUSY) is None


@pytest.mark.parametrize(("raw", "expected"), [
    ("Busy", ShowAs.BUSY), ("busy", ShowAs.BUSY), ("OOF", ShowAs.OOF), ("oof", ShowAs.OOF),
    ("WorkingElsewhere", ShowAs.WORKING_ELSEWHERE), ("workingElsewhere", ShowAs.WORKING_ELSEWHERE),
    ("Free", ShowAs.FREE), ("Tentative", ShowAs.TENTATIVE), ("NoData", ShowAs.UNKNOWN), ("unknown", ShowAs.UNKNOWN),
    (None, ShowAs.BUSY), ("", ShowAs.BUSY), ("  ", ShowAs.BUSY), ("Beschäftigt", ShowAs.UNKNOWN),
    ("busy\r\nEvil: 1", ShowAs.UNKNOWN), ("x" * 100_000, ShowAs.UNKNOWN), (42, ShowAs.UNKNOWN),
    (["busy"], ShowAs.UNKNOWN),
])
def test_hostile_show_as_values_read_safely(raw: object, expected: ShowAs) -> None:
    assert show_as_from(raw) is expected


def test_until_is_local_time_with_the_date_only_when_not_today() -> None:
    assert until_text(at(10, 30), at(9), BERLIN) == "11:30"
    assert until_text(at(23, 30), at(9), BERLIN) == "2026-11-28 00:30"


def test_the_message_is_our_template_on_one_line_and_bounded() -> None:
    hostile = Templates(message="Meeting,\r\nAction: Originate, until {until} " + "é" * 500)
    presence = asterisk_presence(UserState(True, ShowAs.BUSY, at(11, 30)), at(10), hostile, UTC)
    assert "\r" not in presence.message and "\n" not in presence.message
    assert len(presence.message.encode("utf-8")) <= MAX_MESSAGE_BYTES
    assert presence.message.startswith("Meeting, Action: Originate, until 11:30")
    free = asterisk_presence(FREE, at(10), hostile, UTC)
    assert (free.device_state, free.presence, free.message) == ("NOT_INUSE", "available", "")


def test_a_comma_in_the_message_cannot_split_the_presence_value() -> None:
    presence = asterisk_presence(UserState(True, ShowAs.BUSY, at(11, 30)), at(10),
                                 Templates(message="Busy, really, until {until}"), UTC)
    value = presence_value(presence)
    state, subtype, message, options = value.split(",")
    assert (state, subtype, options) == ("dnd", "", "e")
    assert base64.b64decode(message).decode() == "Busy, really, until 11:30"


def test_setvar_actions_name_the_custom_states_of_the_extension() -> None:
    presence = asterisk_presence(FREE, at(10), Templates(), UTC)
    assert setvar_actions("101", presence) == [
        [("Variable", "DEVICE_STATE(Custom:pbxsync-101)"), ("Value", "NOT_INUSE")],
        [("Variable", "PRESENCE_STATE(CustomPresence:101)"), ("Value", "available,,,e")]]
    with pytest.raises(ValidationError):
        setvar_actions("101)=x", presence)


_moments = st.integers(min_value=0, max_value=48).map(lambda q: DAY + timedelta(minutes=30 * q))
_items = st.lists(st.builds(lambda a, b, s, c: item(min(a, b), max(a, b), s, cancelled=c), _moments, _moments,
                            st.sampled_from(list(ShowAs)), st.booleans()), max_size=8)


@given(_items, _moments)
def test_the_state_holds_until_next_change_and_differs_there(items: list[BusyItem], moment: datetime) -> None:
    now = state_at(items, moment, BUSY)
    change = next_change(items, moment, BUSY)
    probes = [moment + timedelta(minutes=15 * k) for k in range(1, 200)]
    for probe in probes:
        if change is not None and probe >= change:
            break
        assert state_at(items, probe, BUSY) == now
    if change is not None:
        assert state_at(items, change, BUSY) != now
    if now.busy:
        assert now.until is not None and (change is None or change <= now.until)
