"""Which organizer meetings need their "Join by phone" block read and (maybe) written: pure decisions.

Rules (tests/unit/test_writeback_plan.py):
- Only a meeting whose organizer's own calendar is synced can be written (we need its item and change key);
  a recurring series is not written (each booked occurrence has its own room and PIN; writing them would
  turn every occurrence into an exception).
- A scheduled booking that has not ended wants the block; a cancelled or rejected one wants none (a block
  written earlier is removed). A booking without a record that wants no block needs nothing.
- Nothing is done for a mailbox that refused writes until its recheck time.
- The stored (tag, change key) equal to the wanted tag and the copy's current change key: nothing changed
  since the last settled outcome (in particular our own write coming back through sync): no job.
- A failed write waits for its back-off (`next_attempt_at`), then is tried again.
- Anything else is a job: the executor reads the body and writes only when the body must change (an
  organizer's edit elsewhere in the body, with our block intact, costs one read and no write).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pbxsync.plugin.writeback.render import JoinDetails, block_tag

BACK_OFF_FIRST = timedelta(minutes=1)
BACK_OFF_MAX = timedelta(hours=1)
READ_ONLY_RECHECK = timedelta(hours=6)
CONFLICT_RETRIES = 3  # re-read and retry this often within one pass before it counts as a failed write


class WriteState(StrEnum):
    WRITTEN = "written"  # the block is in the meeting
    REMOVED = "removed"  # no block wanted, none there
    FAILED = "failed"  # the last try failed; retried after `next_attempt_at`
    READ_ONLY = "read_only"  # Exchange refused writing into this mailbox
    TOO_LARGE = "too_large"  # the body is too large to rewrite (render.MAX_BODY_CHARS)
    GONE = "gone"  # the item vanished before we could write


SETTLED = frozenset({WriteState.WRITTEN, WriteState.REMOVED, WriteState.TOO_LARGE, WriteState.GONE})


@dataclass(frozen=True)
class Candidate:
    """A booking as the write-back step sees it, with its organizer's synced copy."""

    booking_id: int
    mailbox: str
    item_id: str
    change_key: str
    details: JoinDetails | None  # what the block should say; None = no block

    @property
    def tag(self) -> str:
        return block_tag(self.details) if self.details is not None else ""


@dataclass(frozen=True)
class WriteRecord:
    """The stored outcome for one booking (table write_backs)."""

    booking_id: int
    mailbox: str
    item_id: str
    tag: str
    change_key: str
    state: WriteState
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""


@dataclass(frozen=True)
class WriteJob:
    candidate: Candidate
    attempts: int  # failed tries so far (for the next back-off)


def back_off(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try in a row: 1, 2, 4 ... minutes, at most an hour."""
    doublings: int = max(0, min(attempts - 1, 12))
    return min(BACK_OFF_MAX, BACK_OFF_FIRST * (1 << doublings))


def plan_writes(candidates: Iterable[Candidate], records: Mapping[int, WriteRecord],
                read_only: Mapping[str, datetime], now: datetime) -> list[WriteJob]:
    """The jobs for this pass. `read_only`: mailbox -> when it may be tried again."""
    jobs: list[WriteJob] = []
    for cand in candidates:
        if not cand.item_id or not cand.mailbox:
            continue
        recheck = read_only.get(cand.mailbox.lower())
        if recheck is not None and recheck > now:
            continue
        record = records.get(cand.booking_id)
        if record is None:
            if cand.details is not None:
                jobs.append(WriteJob(cand, 0))
            continue
        same_item = record.item_id == cand.item_id
        if same_item and record.state is WriteState.FAILED and record.next_attempt_at is not None \
                and record.next_attempt_at > now:
            continue
        if same_item and record.state in SETTLED and record.tag == cand.tag and record.change_key == cand.change_key:
            continue
        jobs.append(WriteJob(cand, record.attempts if same_item else 0))
    return jobs
