from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pbxsync.plugin.autocall.planner import Attempt, Outcome, PlannerSettings, channel_id_for, plan_calls
from pbxsync.plugin.booking.model import Booking, BookingDraft, Participant, Role, StoredState

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
S = PlannerSettings(retries=2, retry_delay=timedelta(seconds=60), grace=timedelta(minutes=10),
                    ring_timeout=timedelta(seconds=30))


def booking(**kw: object) -> Booking:
    people = (Participant("101", "a@x.com", "Alice", Role.HOST, "organizer", id=1),
              Participant("102", "b@x.com", "Bob", Role.REQUIRED, "accept", id=2),
              Participant("103", "c@x.com", "Carol", Role.REQUIRED, "decline", id=3),
              Participant("104", "d@x.com", "Dan", Role.OPTIONAL, "noresponse", id=4))
    draft = BookingDraft("uid-1", "", "Weekly", "PBX AUTOCALL", T0, T0 + timedelta(hours=1), "UTC", True,
                         StoredState.SCHEDULED, None, "8001", "a@x.com", "101", True, people)
    return Booking(7, replace(draft, **kw))  # type: ignore[arg-type]


def test_before_start_nothing_but_wake_at_start() -> None:
    plan = plan_calls(booking(), [], set(), T0 - timedelta(seconds=5), S)
    assert plan.calls == () and plan.next_check == T0 and not plan.finished


def test_at_start_everybody_to_call_host_first_decliners_skipped() -> None:
    plan = plan_calls(booking(), [], set(), T0, S)
    assert [(c.extension, c.attempt, c.host) for c in plan.calls] == [("101", 1, True), ("102", 1, False),
                                                                     ("104", 1, False)]
    assert plan.calls[0].channel_id == channel_id_for(booking(), 1, "101", 1)
    assert len({c.channel_id for c in plan.calls}) == 3


def test_people_in_room_are_not_called() -> None:
    plan = plan_calls(booking(), [], {"101", "104"}, T0, S)
    assert [c.extension for c in plan.calls] == ["102"]


def test_missed_start_within_grace_is_called_beyond_grace_not() -> None:
    assert len(plan_calls(booking(), [], set(), T0 + timedelta(minutes=9), S).calls) == 3
    late = plan_calls(booking(), [], set(), T0 + timedelta(minutes=11), S)
    assert late.calls == () and late.finished


def test_retry_busy_after_delay_until_retries_used_up() -> None:
    busy1 = Attempt(2, 1, Outcome.BUSY, T0, T0 + timedelta(seconds=2))
    done = [Attempt(1, 1, Outcome.ANSWERED, T0, T0), Attempt(4, 1, Outcome.FAILED, T0, T0)]
    plan = plan_calls(booking(), [*done, busy1], {"101"}, T0 + timedelta(seconds=30), S)
    assert plan.calls == () and plan.next_check == T0 + timedelta(seconds=62)
    plan = plan_calls(booking(), [*done, busy1], {"101"}, T0 + timedelta(seconds=62), S)
    assert [(c.extension, c.attempt) for c in plan.calls] == [("102", 2)]
    third = [busy1, Attempt(2, 2, Outcome.NO_ANSWER, T0, T0 + timedelta(minutes=2)),
             Attempt(2, 3, Outcome.CONGESTION, T0, T0 + timedelta(minutes=4))]
    final = plan_calls(booking(), [*done, *third], {"101"}, T0 + timedelta(minutes=20), S)
    assert final.calls == () and final.finished


def test_retries_continue_after_grace_while_meeting_runs_but_not_after_end() -> None:
    busy = [Attempt(2, 1, Outcome.BUSY, T0, T0)]
    assert [c.attempt for c in plan_calls(booking(), busy, {"101", "104"}, T0 + timedelta(minutes=30), S).calls] == [2]
    assert plan_calls(booking(), busy, set(), T0 + timedelta(hours=1), S).finished


def test_in_flight_attempt_blocks_and_stale_one_counts_as_tried() -> None:
    pending = [Attempt(2, 1, Outcome.PENDING, T0)]
    plan = plan_calls(booking(), pending, {"101", "104"}, T0 + timedelta(seconds=10), S)
    assert plan.calls == () and plan.next_check == T0 + timedelta(seconds=60)
    plan = plan_calls(booking(), pending, {"101", "104"}, T0 + timedelta(seconds=121), S)
    assert [c.attempt for c in plan.calls] == [2]


def test_not_sent_does_not_count_but_numbers_grow() -> None:
    attempts = [Attempt(2, 1, Outcome.NOT_SENT, T0, T0), Attempt(2, 2, Outcome.NOT_SENT, T0, T0)]
    plan = plan_calls(booking(), attempts, {"101", "104"}, T0 + timedelta(minutes=30), S)
    assert [(c.extension, c.attempt) for c in plan.calls] == [("102", 3)]


def test_cancelled_or_not_autocall_is_finished() -> None:
    assert plan_calls(booking(state=StoredState.CANCELLED), [], set(), T0, S).finished
    assert plan_calls(booking(autocall=False), [], set(), T0, S).finished


def test_our_channels_are_recognised_by_their_channel_id_only() -> None:
    from pbxsync.plugin.autocall.channels import booking_of_channel

    assert booking_of_channel("pbxsync-12-3-1-abcdef01") == 12
    for other in ("pbxsync-12-3-1-abcdef01-2", "pbxsync-12-3-1", "1795816405.1", "pbxsync-1x-3-1-abcdef01",
                  "pbxsync-12-3-1-abcdef01\n", ""):
        assert booking_of_channel(other) is None
