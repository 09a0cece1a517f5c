"""Over any history of booking states, passes and send outcomes, the notice planner (plugin/notices/plan.py)
with its rows kept as the store keeps them:

- never records two notices for one (booking, reason);
- records a notice exactly for the reasons the organizer was to be told at some pass;
- sends (marks sent) at most one notice per (booking, reason), and never one whose reason had gone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsync.plugin.booking.model import StoredState
from pbxsync.plugin.notices.plan import NoticeRow, NoticeState, after_failure, due, plan_notices, wanted_reason
from tests.support.notices import CONFLICT, booking

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
USERS = {"101": "alice@example.com"}
STATES = [(StoredState.SCHEDULED, None), (StoredState.REJECTED, CONFLICT),
          (StoredState.REJECTED, "all-day events are not booked: give the meeting a start and an end time"),
          (StoredState.REJECTED, "the organizer guest@partner.org is not a PBX user"),
          (StoredState.CANCELLED, "cancelled by the organizer in Exchange")]
passes = st.lists(st.tuples(st.lists(st.sampled_from(range(len(STATES))), min_size=2, max_size=2),
                            st.booleans()), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(passes)
def test_never_twice_and_only_what_was_due(history: list[tuple[list[int], bool]]) -> None:
    rows: dict[int, NoticeRow] = {}
    booked: set[int] = set()
    wanted_ever: set[tuple[int, str]] = set()
    sent: list[tuple[int, str]] = []
    now = NOW
    for step, (states, send_works) in enumerate(history):
        now = NOW + timedelta(minutes=10 * step)
        bookings = [booking(i + 1, *STATES[s], start=NOW + timedelta(days=1)) for i, s in enumerate(states)]
        visible = [b for b in bookings if b.draft.state is not StoredState.CANCELLED]  # as list_bookings loads
        for b in visible:
            reason = wanted_reason(b, booked)
            if reason is not None and b.draft.organizer_extension in USERS:
                wanted_ever.add((b.id, reason))
        plan = plan_notices(visible, rows.values(), booked, USERS, now)
        booked.update(plan.mark_booked)
        for new in plan.create:
            assert all((r.booking_id, r.reason) != (new.booking_id, new.reason) for r in rows.values())
            notice_id = len(rows) + 1
            rows[notice_id] = NoticeRow(notice_id, new.booking_id, new.reason, NoticeState.PENDING, 0, now)
        for notice_id in plan.obsolete:
            rows[notice_id] = replace(rows[notice_id], state=NoticeState.OBSOLETE)
        current = {b.id: wanted_reason(b, booked) for b in visible}
        for row in due(rows.values(), now):
            assert current.get(row.booking_id) == row.reason  # never a notice whose reason has gone
            if send_works:
                rows[row.id] = replace(row, state=NoticeState.SENT, attempts=row.attempts + 1)
                sent.append((row.booking_id, row.reason))
            else:
                state, next_at = after_failure(row, now)
                rows[row.id] = replace(row, state=state, attempts=row.attempts + 1, next_attempt_at=next_at)
    assert len(sent) == len(set(sent))
    assert {(r.booking_id, r.reason) for r in rows.values()} == wanted_ever
