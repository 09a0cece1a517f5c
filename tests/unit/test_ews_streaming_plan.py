"""The EWS streaming feed's decisions (sync.notify.ews_plan): grouping, renewal, expiry, retries, event folders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.sync.model import Folder
from pbxsync.sync.notify.ews_plan import (
    MAX_SUBSCRIPTIONS_PER_CONNECTION,
    Attempts,
    StreamingPolicy,
    Target,
    after_failure,
    after_subscribed,
    after_success,
    folders_of_event,
    next_wakeup,
    plan_groups,
    presumed_expired,
    renew_at,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
EWS = "https://mail.example.com/EWS/Exchange.asmx"
BOTH = (Folder.CALENDAR, Folder.CONTACTS)


def target(mailbox: str, endpoint: str = EWS, owner: str = "svc-pbx@example.com") -> Target:
    return Target(mailbox, BOTH, endpoint, owner)


def test_a_group_holds_at_most_200_subscriptions_and_its_anchor_is_its_alphabetically_first_mailbox() -> None:
    targets = [target(f"user{i:04d}@example.com") for i in reversed(range(450))]
    groups = plan_groups(targets)
    assert [len(g.targets) for g in groups] == [200, 200, 50]
    assert [g.anchor for g in groups] == ["user0000@example.com", "user0200@example.com", "user0400@example.com"]
    for group in groups:
        mailboxes = [t.mailbox for t in group.targets]
        assert mailboxes == sorted(mailboxes) and group.anchor == mailboxes[0]


def test_mailboxes_of_different_endpoints_or_owners_never_share_a_connection() -> None:
    groups = plan_groups([target("a@example.com"), target("b@example.com", endpoint="https://other/EWS"),
                          target("c@example.com", owner="c@example.com"), target("d@example.com")])
    assert sorted(tuple(t.mailbox for t in g.targets) for g in groups) == [
        ("a@example.com", "d@example.com"), ("b@example.com",), ("c@example.com",)]
    assert all(len({(t.endpoint, t.owner) for t in g.targets}) == 1 for g in groups)


def test_without_impersonation_each_user_owns_a_connection() -> None:
    groups = plan_groups([Target(m, BOTH, EWS, m) for m in ("a@example.com", "b@example.com")])
    assert [g.anchor for g in groups] == ["a@example.com", "b@example.com"]


@given(st.lists(st.from_regex(r"[a-z]{1,6}@(ex|other)\.com", fullmatch=True), max_size=60),
       st.integers(1, MAX_SUBSCRIPTIONS_PER_CONNECTION))
def test_every_mailbox_is_in_exactly_one_group_of_bounded_size(mailboxes: list[str], limit: int) -> None:
    targets = [target(m, endpoint=m.split("@")[1]) for m in mailboxes]
    groups = plan_groups(targets, limit)
    placed = [t.mailbox for g in groups for t in g.targets]
    assert sorted(placed) == sorted(set(mailboxes))
    assert all(1 <= len(g.targets) <= limit and g.anchor == g.targets[0].mailbox for g in groups)


def test_a_connection_is_renewed_before_the_timeout_exchange_was_asked_for() -> None:
    policy = StreamingPolicy(connection_minutes=10, renew_before_seconds=30)
    assert renew_at(T0, policy) == T0 + timedelta(minutes=9, seconds=30)


@pytest.mark.parametrize("bad", [{"connection_minutes": 0}, {"connection_minutes": 31},
                                 {"max_per_connection": 201}, {"renew_before_seconds": 600}])
def test_a_policy_outside_what_exchange_accepts_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StreamingPolicy(**bad)  # type: ignore[arg-type]


def test_subscriptions_are_presumed_dead_after_a_gap_longer_than_their_lifetime() -> None:
    policy = StreamingPolicy(subscription_lifetime_seconds=25 * 60)
    assert not presumed_expired(None, T0, policy)  # never connected: nothing to lose yet
    assert not presumed_expired(T0, T0 + timedelta(minutes=25), policy)
    assert presumed_expired(T0, T0 + timedelta(minutes=25, seconds=1), policy)


def test_failures_back_off_doubling_then_fall_back_to_polling_and_retry_rarely() -> None:
    policy = StreamingPolicy(retry_initial_seconds=1, retry_max_seconds=60, max_failures=3,
                             fallback_retry_seconds=300)
    a = Attempts()
    assert a.due(T0)
    a = after_failure(a, T0, policy)
    assert (a.failures, a.retry_at, a.fallback) == (1, T0 + timedelta(seconds=1), False)
    assert not a.due(T0) and a.due(T0 + timedelta(seconds=1))
    a = after_failure(a, T0, policy)
    assert (a.retry_at, a.fallback) == (T0 + timedelta(seconds=2), False)
    a = after_failure(a, T0, policy)
    assert (a.failures, a.retry_at, a.fallback) == (3, T0 + timedelta(seconds=300), True)


def test_the_retry_delay_never_exceeds_its_maximum() -> None:
    policy = StreamingPolicy(retry_initial_seconds=1, retry_max_seconds=60, max_failures=100)
    a = Attempts()
    for _ in range(20):
        a = after_failure(a, T0, policy)
    assert a.retry_at == T0 + timedelta(seconds=60) and not a.fallback


def test_a_new_subscription_leaves_fallback_but_only_a_working_one_clears_the_failures() -> None:
    policy = StreamingPolicy(max_failures=3)
    a = after_failure(after_failure(after_failure(Attempts(), T0, policy), T0, policy), T0, policy)
    assert a.fallback
    a = after_subscribed(a)
    assert (a.failures, a.retry_at, a.fallback) == (3, None, False)
    assert after_failure(a, T0, policy).fallback  # lost again at once: straight back to polling, no tight loop
    assert after_success(a) == Attempts()


def test_next_wakeup_is_the_earliest_retry() -> None:
    assert next_wakeup([None, T0 + timedelta(seconds=5), T0 + timedelta(seconds=2)]) == T0 + timedelta(seconds=2)
    assert next_wakeup([None]) is None


def test_an_event_counts_for_the_folders_it_names() -> None:
    known = {"fld-cal": Folder.CALENDAR, "fld-con": Folder.CONTACTS}
    assert folders_of_event(["fld-cal"], known, BOTH) == (Folder.CALENDAR,)
    # a meeting deleted in Outlook moves to Deleted Items: the old parent is the calendar
    assert folders_of_event(["fld-deleted", "fld-cal"], known, BOTH) == (Folder.CALENDAR,)
    assert folders_of_event(["fld-con", "fld-cal"], known, BOTH) == BOTH


def test_an_event_naming_no_known_folder_counts_for_every_subscribed_folder() -> None:
    known = {"fld-cal": Folder.CALENDAR}
    assert folders_of_event(["somewhere-else"], known, (Folder.CALENDAR,)) == (Folder.CALENDAR,)
    assert folders_of_event([], {}, BOTH) == BOTH
