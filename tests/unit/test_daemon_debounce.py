"""Debouncing notifications (plugin.daemon.debounce): a burst for one folder is one pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.daemon.debounce import DebouncePolicy, Debouncer

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
POLICY = DebouncePolicy(quiet_seconds=1.0, max_wait_seconds=3.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_single_event_is_due_after_the_quiet_time() -> None:
    d: Debouncer[str] = Debouncer(POLICY)
    d.add("cal", at(0), "event")
    assert d.next_due() == at(1)
    assert d.pop_due(at(0.9)) == {}
    (pending,) = d.pop_due(at(1)).values()
    assert pending.first == at(0) and pending.reasons == {"event"}
    assert len(d) == 0 and d.next_due() is None


def test_a_burst_is_one_pass_due_after_the_last_event_goes_quiet() -> None:
    d: Debouncer[str] = Debouncer(POLICY)
    for t in (0, 0.3, 0.6, 0.9):
        d.add("cal", at(t), "event")
    assert d.next_due() == at(1.9)
    due = d.pop_due(at(1.9))
    assert list(due) == ["cal"] and due["cal"].first == at(0) and due["cal"].last == at(0.9)


def test_a_steady_trickle_cannot_postpone_the_pass_beyond_the_maximum_wait() -> None:
    d: Debouncer[str] = Debouncer(POLICY)
    for t in (0, 0.8, 1.6, 2.4, 3.2):
        d.add("cal", at(t), "event")
        if t < 3:
            assert d.pop_due(at(t)) == {}
    assert d.next_due() == at(3)
    assert "cal" in d.pop_due(at(3.2))


def test_folders_are_debounced_independently_and_reasons_are_kept() -> None:
    d: Debouncer[str] = Debouncer(POLICY)
    d.add("alice/cal", at(0), "event")
    d.add("bob/cal", at(0.5), "resubscribed")
    d.add("alice/cal", at(0.2), "resubscribed")
    assert set(d.pop_due(at(1.2))) == {"alice/cal"}
    (bob,) = d.pop_due(at(1.5)).values()
    assert bob.reasons == {"resubscribed"}


def test_a_held_back_retry_is_not_brought_forward_by_a_new_event() -> None:
    d: Debouncer[str] = Debouncer(POLICY)
    d.add("cal", at(0), "retry", not_before=at(30), retries=1)
    d.add("cal", at(5), "event")
    assert d.next_due() == at(30)
    (pending,) = d.pop_due(at(30)).values()
    assert pending.retries == 1 and pending.reasons == {"retry", "event"}


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30))
def test_a_burst_is_due_at_quiet_after_its_last_event_or_max_wait_after_its_first(times: list[float]) -> None:
    d: Debouncer[str] = Debouncer(POLICY)
    for t in sorted(times):
        d.add("k", at(t), "event")
    assert d.next_due() == min(at(max(times)) + timedelta(seconds=POLICY.quiet_seconds),
                               at(min(times)) + timedelta(seconds=POLICY.max_wait_seconds))
