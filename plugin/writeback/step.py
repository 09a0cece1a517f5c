"""The write-back step after each sync pass: plan (plugin.writeback.plan), read, render, write, store.

Per organizer mailbox ([sync] concurrency of them at once): one read of every body the plan names, our block
applied to each (render.apply_block), one write of those that changed, with the change keys just read. A
conflict (someone edited the meeting between our read and our write) reads that meeting again and retries, at
most CONFLICT_RETRIES times in a pass; then it counts as a failed write. A refused write (ErrorAccessDenied /
403) makes the mailbox read-only for write-back: one warning when it happens, one info line when writing works
again after the recheck; its other meetings are not tried in that pass. Everything else failed is retried
after a back-off. All outcomes of a pass are stored in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from pbxsync.plugin.writeback.plan import (
    CONFLICT_RETRIES,
    READ_ONLY_RECHECK,
    WriteJob,
    WriteRecord,
    WriteState,
    back_off,
    plan_writes,
)
from pbxsync.plugin.writeback.render import BodyTooLarge, apply_block
from pbxsync.plugin.writeback.store import (
    ReadOnlyMailbox,
    load_candidates,
    load_records,
    read_only_mailboxes,
    save_outcomes,
)
from pbxsync.sync.config import Config
from pbxsync.sync.errors import ItemGoneError, SourceError, WriteConflictError, WriteDeniedError
from pbxsync.sync.sources.writer import CalendarWriter, ItemBody
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.writeback")


@dataclass
class WriteBackSummary:
    jobs: int = 0
    writes: int = 0  # meetings whose body was written
    conflicts: int = 0  # writes refused for a stale change key (then read again)
    failed: int = 0
    read_only: list[str] = field(default_factory=list)  # mailboxes that refused a write in this pass


@dataclass
class _Mailbox:
    """One organizer mailbox's share of a pass."""

    name: str
    jobs: list[WriteJob]
    previous: dict[int, WriteRecord]
    now: datetime
    outcomes: list[WriteRecord] = field(default_factory=list)
    denied: str = ""  # why Exchange refused a write ("" = it did not)

    def settle(self, job: WriteJob, state: WriteState, change_key: str, error: str = "") -> None:
        c = job.candidate
        self.outcomes.append(WriteRecord(c.booking_id, c.mailbox, c.item_id, c.tag, change_key, state, 0, None, error))

    def fail(self, job: WriteJob, error: str, state: WriteState = WriteState.FAILED) -> None:
        c = job.candidate
        before = self.previous.get(c.booking_id)
        tag, key = (before.tag, before.change_key) if before is not None and before.item_id == c.item_id else ("", "")
        attempts = job.attempts + 1 if state is WriteState.FAILED else job.attempts
        retry = self.now + back_off(attempts) if state is WriteState.FAILED else None
        self.outcomes.append(WriteRecord(c.booking_id, c.mailbox, c.item_id, tag, key, state, attempts, retry, error))


async def write_back(store: Store, config: Config, writer: CalendarWriter, now: datetime) -> WriteBackSummary:
    """One write-back pass over every booking that needs it."""
    candidates = await load_candidates(store, config.pbx, now)
    records = await load_records(store)
    blocked = await read_only_mailboxes(store)
    jobs = plan_writes(candidates, records, {m: r.recheck_at for m, r in blocked.items()}, now)
    summary = WriteBackSummary(jobs=len(jobs))
    if not jobs:
        return summary
    groups: dict[str, list[WriteJob]] = defaultdict(list)
    for job in jobs:
        groups[job.candidate.mailbox].append(job)
    outcomes: list[WriteRecord] = []
    still_read_only: list[ReadOnlyMailbox] = []
    writable: list[str] = []
    boxes = [_Mailbox(name, mailbox_jobs, records, now) for name, mailbox_jobs in groups.items()]
    limit = asyncio.Semaphore(config.sync.concurrency)  # mailboxes at once, as the sync reads them

    async def one(box: _Mailbox) -> None:
        async with limit:
            await _write_mailbox(box, writer, config.meetings.notify_attendees, summary)

    await asyncio.gather(*(one(box) for box in boxes))
    for box in boxes:
        name = box.name
        outcomes += box.outcomes
        if box.denied:
            summary.read_only.append(name)
            if name not in blocked:
                log.warning("write-back: %s is now read-only for pbxsync: %s. Meetings keep being booked; "
                            "no dial-in block is written there until write access is granted (checked again "
                            "every %d hours).", name, box.denied, READ_ONLY_RECHECK.total_seconds() // 3600)
            since = blocked[name].since if name in blocked else now
            still_read_only.append(ReadOnlyMailbox(name, since, now + READ_ONLY_RECHECK, box.denied))
        elif name in blocked and any(o.state is not WriteState.FAILED for o in box.outcomes):
            log.info("write-back: %s accepts writes again", name)
            writable.append(name)
    await save_outcomes(store, outcomes, now, still_read_only, writable)
    return summary


async def _write_mailbox(box: _Mailbox, writer: CalendarWriter, notify: bool, summary: WriteBackSummary) -> None:
    pending = list(box.jobs)
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            bodies = await writer.read_bodies(box.name, [j.candidate.item_id for j in pending])
        except SourceError as exc:
            for job in pending:
                _item_failed(box, job, exc, summary)
            return
        to_write: list[tuple[WriteJob, ItemBody]] = []
        for job, body in zip(pending, bodies, strict=True):
            if isinstance(body, SourceError):
                _item_failed(box, job, body, summary)
            else:
                try:
                    new = apply_block(body.content, body.is_html, job.candidate.details)
                except BodyTooLarge as exc:
                    box.settle(job, WriteState.TOO_LARGE, body.change_key, str(exc))
                    continue
                if new == body.content:  # already as wanted (our own change, or an edit elsewhere)
                    box.settle(job, _done(job), body.change_key)
                else:
                    to_write.append((job, replace(body, content=new)))
        if not to_write:
            return
        pending = await _write(box, writer, to_write, notify, summary, last=attempt == CONFLICT_RETRIES)
        if not pending:
            return


async def _write(box: _Mailbox, writer: CalendarWriter, to_write: list[tuple[WriteJob, ItemBody]], notify: bool,
                 summary: WriteBackSummary, last: bool) -> list[WriteJob]:
    """Write; returns the jobs whose write conflicted, to be read and tried again."""
    try:
        results = await writer.write_bodies(box.name, [b for _, b in to_write], notify=notify)
    except SourceError as exc:  # the whole request failed (or was refused): each of its items did
        results = [exc] * len(to_write)
    again: list[WriteJob] = []
    for (job, _), result in zip(to_write, results, strict=True):
        if isinstance(result, WriteConflictError):
            summary.conflicts += 1
            if not last:
                again.append(job)
                continue
        if isinstance(result, SourceError):
            _item_failed(box, job, result, summary)
        else:
            summary.writes += 1
            box.settle(job, _done(job), result)
    return again


def _item_failed(box: _Mailbox, job: WriteJob, error: SourceError, summary: WriteBackSummary) -> None:
    """One meeting's read or write failed: gone (nothing to do), refused (the mailbox is read-only) or
    failed (retried after its back-off)."""
    if isinstance(error, ItemGoneError):
        box.settle(job, WriteState.GONE, job.candidate.change_key, str(error))
    elif isinstance(error, WriteDeniedError):
        box.denied = str(error)
        box.fail(job, str(error), WriteState.READ_ONLY)
    else:
        box.fail(job, str(error))
        summary.failed += 1


def _done(job: WriteJob) -> WriteState:
    return WriteState.WRITTEN if job.candidate.details is not None else WriteState.REMOVED
