"""Graph delta polling as plain data: batches of probes, what an answer means, when a folder is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.sync.model import Folder
from pbxsync.sync.notify.graph_polling import (
    MAX_BATCH,
    PROBE_PREFER,
    PollSchedule,
    Probe,
    batch_body,
    pack,
    probe_outcome,
    read_batch,
    relative_link,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ENDPOINT = "https://graph.microsoft.com/v1.0"
CAL, CON = Folder.CALENDAR, Folder.CONTACTS


def probe(i: int, folder: Folder = CAL, mailbox: str | None = None) -> Probe:
    box = mailbox or f"user{i}@example.com"
    return Probe(box, folder, f"/users/{box}/calendarView/delta?$deltatoken=t{i}")


# ---- building batches


def test_a_deltalink_becomes_a_url_relative_to_the_version() -> None:
    link = f"{ENDPOINT}/users/a@example.com/calendarView/delta?$deltatoken=abc"
    assert relative_link(link, ENDPOINT) == "/users/a@example.com/calendarView/delta?$deltatoken=abc"
    assert relative_link(link, ENDPOINT + "/") == "/users/a@example.com/calendarView/delta?$deltatoken=abc"


def test_a_link_to_another_host_is_never_probed() -> None:
    assert relative_link("https://evil.example.com/v1.0/users/a/contacts/delta", ENDPOINT) is None
    assert relative_link("https://graph.microsoft.com/beta/users/a/contacts/delta", ENDPOINT) is None


def test_batches_hold_at_most_20_requests() -> None:
    batches = pack(probe(i) for i in range(45))
    assert [len(b) for b in batches] == [20, 20, 5]
    assert [p for b in batches for p in b] == [probe(i) for i in range(45)]


def test_one_mailbox_has_at_most_four_requests_in_one_batch() -> None:
    crowded = [probe(i, CON, mailbox="big@example.com") for i in range(9)] + [probe(i) for i in range(3)]
    batches = pack(crowded)
    for batch in batches:
        assert sum(1 for p in batch if p.mailbox == "big@example.com") <= 4
        assert len(batch) <= MAX_BATCH
    assert sorted(p.url for b in batches for p in b) == sorted(p.url for p in crowded)
    assert len(batches) == 3


def test_the_batch_body_asks_for_one_row_per_probe_with_ids_that_pair_the_answers() -> None:
    body = batch_body([probe(1), probe(2)])
    assert body == {"requests": [
        {"id": "1", "method": "GET", "url": probe(1).url, "headers": {"Prefer": PROBE_PREFER}},
        {"id": "2", "method": "GET", "url": probe(2).url, "headers": {"Prefer": PROBE_PREFER}}]}
    assert PROBE_PREFER == "odata.maxpagesize=1"


# ---- reading answers


def test_an_empty_page_ending_in_a_deltalink_means_unchanged() -> None:
    assert probe_outcome(200, {}, {"value": [], "@odata.deltaLink": "x"})[0] == "unchanged"


def test_a_row_or_a_nextlink_means_changed() -> None:
    assert probe_outcome(200, {}, {"value": [{"id": "AAMk"}], "@odata.nextLink": "x"})[0] == "changed"
    assert probe_outcome(200, {}, {"value": [{"id": "AAMk"}], "@odata.deltaLink": "x"})[0] == "changed"
    assert probe_outcome(200, {}, {"value": [], "@odata.nextLink": "x"})[0] == "changed"


def test_gone_delta_state_and_odd_pages_are_told_apart() -> None:
    assert probe_outcome(410, {}, {"error": {"code": "SyncStateNotFound"}})[0] == "gone"
    assert probe_outcome(200, {}, {"value": []}) == ("failed", None, "an unusable delta page")
    assert probe_outcome(200, {}, "not json") == ("failed", None, "an unusable delta page")
    assert probe_outcome(403, {}, {"error": {"code": "ErrorAccessDenied"}}) == (
        "failed", None, "HTTP 403 ErrorAccessDenied")


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_a_429_inside_a_batch_carries_its_retry_after(name: str) -> None:
    assert probe_outcome(429, {name: "17"}, {"error": {"code": "TooManyRequests"}}) == ("throttled", 17.0, "HTTP 429")
    assert probe_outcome(503, {}, None) == ("throttled", None, "HTTP 503")


def test_responses_are_paired_by_id_whatever_their_order() -> None:
    probes = [probe(1), probe(2), probe(3)]
    answer = {"responses": [
        {"id": "3", "status": 429, "headers": {"Retry-After": "5"}, "body": {}},
        {"id": "1", "status": 200, "body": {"value": [], "@odata.deltaLink": "x"}},
    ]}
    results = read_batch(probes, answer)
    assert [(r.probe, r.outcome) for r in results] == [(probes[0], "unchanged"), (probes[1], "failed"),
                                                       (probes[2], "throttled")]
    assert results[1].detail == "no response in the batch"
    assert results[2].retry_after == 5.0


def test_a_broken_batch_answer_fails_every_probe_in_it() -> None:
    assert {r.outcome for r in read_batch([probe(1), probe(2)], {"oops": 1})} == {"failed"}
    assert {r.outcome for r in read_batch([probe(1)], {"responses": [{"id": 1, "status": 200}]})} == {"failed"}


# ---- when folders are due


def test_every_folder_is_due_at_once_then_after_its_own_interval() -> None:
    schedule = PollSchedule(calendar_every=30, contacts_every=300)
    folders = [("a@example.com", CAL), ("a@example.com", CON)]
    assert schedule.due(folders, NOW) == folders
    for key in folders:
        schedule.polled(key, NOW)
    assert schedule.due(folders, NOW + timedelta(seconds=29)) == []
    assert schedule.due(folders, NOW + timedelta(seconds=30)) == [("a@example.com", CAL)]
    assert schedule.due(folders, NOW + timedelta(seconds=300)) == folders
    assert schedule.next_due(folders, NOW) == NOW + timedelta(seconds=30)


def test_an_interval_of_zero_means_that_kind_is_not_polled() -> None:
    schedule = PollSchedule(calendar_every=30, contacts_every=0)
    folders = [("a@example.com", CON)]
    assert schedule.due(folders, NOW) == []
    assert schedule.next_due(folders, NOW) is None


def test_a_throttled_mailbox_waits_for_its_retry_after_and_only_it() -> None:
    schedule = PollSchedule(calendar_every=30, contacts_every=300)
    busy, calm = ("busy@example.com", CAL), ("calm@example.com", CAL)
    for key in (busy, calm):
        schedule.polled(key, NOW)
    schedule.throttle("busy@example.com", NOW + timedelta(seconds=120))
    later = NOW + timedelta(seconds=30)
    assert schedule.due([busy, calm], later) == [calm]
    assert schedule.due([busy, calm], NOW + timedelta(seconds=120)) == [busy, calm]
    assert schedule.throttled(later) == ["busy@example.com"]
    assert schedule.next_due([busy], later) == NOW + timedelta(seconds=120)


def test_a_shorter_retry_after_never_shortens_a_longer_hold() -> None:
    schedule = PollSchedule(calendar_every=30, contacts_every=300)
    schedule.throttle("busy@example.com", NOW + timedelta(seconds=120))
    schedule.throttle("busy@example.com", NOW + timedelta(seconds=10))
    assert schedule.not_before["busy@example.com"] == NOW + timedelta(seconds=120)
