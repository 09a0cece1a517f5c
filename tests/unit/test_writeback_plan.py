"""Which meetings the write-back reads and writes (plugin.writeback.plan): rules as test names."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pbxsync.plugin.writeback.plan import (
    BACK_OFF_MAX,
    Candidate,
    WriteRecord,
    WriteState,
    back_off,
    plan_writes,
)
from pbxsync.plugin.writeback.render import JoinDetails

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
DETAILS = JoinDetails("8001", "1234", False, NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), "UTC")
WANTS = Candidate(1, "alice@example.com", "item-1", "ck-2", DETAILS)
WRITTEN = WriteRecord(1, "alice@example.com", "item-1", WANTS.tag, "ck-2", WriteState.WRITTEN)


def planned(candidate: Candidate, record: WriteRecord | None = None,
            read_only: dict[str, datetime] | None = None) -> bool:
    records = {record.booking_id: record} if record is not None else {}
    return bool(plan_writes([candidate], records, read_only or {}, NOW))


def test_a_new_booking_is_written() -> None:
    assert planned(WANTS)


def test_a_booking_that_wants_no_block_and_never_had_one_needs_nothing() -> None:
    assert not planned(replace(WANTS, details=None))


def test_a_meeting_whose_organizer_copy_is_not_synced_is_not_written() -> None:
    assert not planned(replace(WANTS, item_id=""))


def test_our_own_change_coming_back_is_no_job() -> None:
    assert not planned(WANTS, WRITTEN)


def test_an_edit_by_someone_else_is_read_again() -> None:
    assert planned(replace(WANTS, change_key="ck-3"), WRITTEN)


def test_a_changed_booking_is_written_again() -> None:
    assert planned(replace(WANTS, details=replace(DETAILS, room="8003")), WRITTEN)


def test_a_cancelled_booking_has_its_block_removed() -> None:
    assert planned(replace(WANTS, details=None), WRITTEN)
    removed = replace(WRITTEN, tag="", state=WriteState.REMOVED)
    assert not planned(replace(WANTS, details=None), removed)


def test_a_failed_write_waits_for_its_back_off() -> None:
    failed = replace(WRITTEN, tag="", state=WriteState.FAILED, attempts=2, next_attempt_at=NOW + timedelta(minutes=1))
    assert not planned(WANTS, failed)
    assert planned(WANTS, replace(failed, next_attempt_at=NOW))
    [job] = plan_writes([WANTS], {1: replace(failed, next_attempt_at=NOW)}, {}, NOW)
    assert job.attempts == 2


def test_a_read_only_mailbox_waits_for_its_recheck() -> None:
    assert not planned(WANTS, read_only={"alice@example.com": NOW + timedelta(hours=1)})
    refused = replace(WRITTEN, state=WriteState.READ_ONLY)
    assert planned(WANTS, refused, read_only={"alice@example.com": NOW})


def test_a_new_item_for_the_booking_starts_afresh() -> None:
    failed = replace(WRITTEN, state=WriteState.FAILED, attempts=5, next_attempt_at=NOW + timedelta(hours=1))
    [job] = plan_writes([replace(WANTS, item_id="item-2")], {1: failed}, {}, NOW)
    assert job.attempts == 0


def test_too_large_and_gone_stay_settled_until_the_item_changes() -> None:
    for state in (WriteState.TOO_LARGE, WriteState.GONE):
        assert not planned(WANTS, replace(WRITTEN, state=state))
        assert planned(replace(WANTS, change_key="ck-9"), replace(WRITTEN, state=state))


def test_back_off_doubles_from_a_minute_up_to_an_hour() -> None:
    assert [back_off(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert back_off(50) == BACK_OFF_MAX
