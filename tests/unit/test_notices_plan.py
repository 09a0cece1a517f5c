"""Which notices to organizers are due (plugin/notices/plan.py): the rules, one test each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pbxsync.plugin.booking.model import StoredState
from pbxsync.plugin.booking.planner import (
    ALL_DAY,
    CANCELLED_IN_EXCHANGE,
    ENDS_BEFORE_START,
    NO_DURATION,
    NO_ORGANIZER,
    NOT_A_CONFERENCE,
    organizer_not_a_user,
)
from pbxsync.plugin.notices.plan import (
    FIRST_RETRY,
    LONGEST_RETRY,
    MAX_ATTEMPTS,
    NewNotice,
    NoticeRow,
    NoticeState,
    after_failure,
    due,
    plan_notices,
)
from pbxsync.plugin.notices.reasons import reason_code
from tests.support.notices import CONFLICT, booking

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
ALICE = "alice@example.com"
USERS = {"101": ALICE}


def row(notice_id: int, reason: str, state: NoticeState = NoticeState.SENT, booking_id: int = 1,
        attempts: int = 0, next_at: datetime | None = NOW) -> NoticeRow:
    return NoticeRow(notice_id, booking_id, reason, state, attempts, next_at)


def test_a_meeting_rejected_for_want_of_a_room_gets_one_notice_to_its_pbx_user_organizer() -> None:
    plan = plan_notices([booking()], [], set(), USERS, NOW)
    assert plan.create == (NewNotice(1, "rejected:no_room", ALICE),)


def test_never_twice_for_the_same_booking_and_reason() -> None:
    for state in NoticeState:
        assert plan_notices([booking()], [row(7, "rejected:no_room", state)], set(), USERS, NOW).create == ()


def test_a_changed_conflict_text_is_the_same_reason() -> None:
    other = CONFLICT.replace("Secret", "Another meeting")
    assert plan_notices([booking(reason=other)], [row(7, "rejected:no_room")], set(), USERS, NOW).create == ()


def test_a_new_reason_is_a_new_notice() -> None:
    plan = plan_notices([booking(reason=ALL_DAY)], [row(7, "rejected:no_room")], set(), USERS, NOW)
    assert plan.create == (NewNotice(1, "rejected:all_day", ALICE),)


def test_an_outside_organizer_never_gets_one() -> None:
    outside = booking(reason=organizer_not_a_user("guest@partner.org"), extension=None)
    assert plan_notices([outside], [], set(), USERS, NOW).create == ()
    assert plan_notices([booking(reason=NO_ORGANIZER, extension=None)], [], set(), USERS, NOW).create == ()


def test_an_organizer_known_only_outside_the_config_gets_none() -> None:
    # e.g. an Asterisk voicemail user: matched as a PBX user, but not a configured [[users]] entry
    assert plan_notices([booking(extension="555")], [], set(), USERS, NOW).create == ()


def test_the_reasons_an_organizer_can_act_on() -> None:
    assert reason_code(ALL_DAY) == "all_day"
    assert reason_code(ENDS_BEFORE_START) == "ends_before_start"
    assert reason_code(NO_DURATION) == "no_duration"
    assert reason_code(CONFLICT) == "no_room"
    assert reason_code("no room: the organizer has no room and [pbx] rooms is empty") == "no_room"
    assert reason_code("something the planner says one day") == "other"
    assert reason_code(organizer_not_a_user("x@y.z")) is None
    assert reason_code(None) is None


def test_a_booking_pbxsync_had_booked_and_then_rejected_is_a_cancellation() -> None:
    plan = plan_notices([booking()], [], {1}, USERS, NOW)
    assert plan.create == (NewNotice(1, "cancelled:no_room", ALICE),)


def test_a_scheduled_booking_is_remembered_as_booked_once() -> None:
    scheduled = booking(state=StoredState.SCHEDULED, reason=None)
    assert plan_notices([scheduled], [], set(), USERS, NOW).mark_booked == (1,)
    assert plan_notices([scheduled], [], {1}, USERS, NOW).mark_booked == ()
    assert plan_notices([scheduled], [], set(), USERS, NOW).create == ()


def test_cancellations_by_the_organizer_are_not_told() -> None:
    for reason in (CANCELLED_IN_EXCHANGE, NOT_A_CONFERENCE):
        cancelled = booking(state=StoredState.CANCELLED, reason=reason)
        assert plan_notices([cancelled], [], {1}, USERS, NOW).create == ()


def test_a_meeting_that_has_ended_gets_none() -> None:
    past = booking(start=NOW - timedelta(hours=2))
    assert plan_notices([past], [], set(), USERS, NOW).create == ()


def test_a_pending_notice_whose_reason_went_away_becomes_obsolete() -> None:
    pending = row(7, "rejected:no_room", NoticeState.PENDING)
    booked_again = booking(state=StoredState.SCHEDULED, reason=None)
    assert plan_notices([booked_again], [pending], set(), USERS, NOW).obsolete == (7,)
    assert plan_notices([], [pending], set(), USERS, NOW).obsolete == (7,)  # cancelled or ended: not listed
    assert plan_notices([booking()], [pending], set(), USERS, NOW).obsolete == ()


def test_a_sent_notice_is_never_made_obsolete() -> None:
    assert plan_notices([], [row(7, "rejected:no_room", NoticeState.SENT)], set(), USERS, NOW).obsolete == ()


def test_due_are_the_pending_ones_whose_time_has_come() -> None:
    rows = [row(1, "rejected:no_room", NoticeState.PENDING, next_at=NOW),
            row(2, "rejected:all_day", NoticeState.PENDING, next_at=NOW + timedelta(minutes=1)),
            row(3, "rejected:no_duration", NoticeState.SENT)]
    assert [r.id for r in due(rows, NOW)] == [1]


def test_a_failed_send_backs_off_doubling_up_to_an_hour_then_gives_up() -> None:
    first = after_failure(row(1, "rejected:no_room", NoticeState.PENDING, attempts=0), NOW)
    assert first == (NoticeState.PENDING, NOW + FIRST_RETRY)
    second = after_failure(row(1, "rejected:no_room", NoticeState.PENDING, attempts=1), NOW)
    assert second == (NoticeState.PENDING, NOW + 2 * FIRST_RETRY)
    late = after_failure(row(1, "rejected:no_room", NoticeState.PENDING, attempts=MAX_ATTEMPTS - 2), NOW)
    assert late == (NoticeState.PENDING, NOW + LONGEST_RETRY)
    last = after_failure(row(1, "rejected:no_room", NoticeState.PENDING, attempts=MAX_ATTEMPTS - 1), NOW)
    assert last[0] is NoticeState.ABANDONED
