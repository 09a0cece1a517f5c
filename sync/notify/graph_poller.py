"""Graph delta polling rounds (the rules are in `graph_polling`; this module does the requests).

Every round probes the due folders' deltaLinks in `$batch` calls and emits reason "poll" for the folders
that changed, "missed" for those whose delta state is gone. A folder not yet synced in this process has
no link to probe: it is emitted ("missed") so the daemon syncs it, at most every COLD_RETRY_SECONDS while
that stays so. Used for every folder in polling mode and for the folders without a working subscription
in webhook mode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from pbxsync.sync.errors import SourceError
from pbxsync.sync.model import Folder
from pbxsync.sync.notify.base import FeedClock
from pbxsync.sync.notify.graph_polling import (
    FolderKey,
    PollSchedule,
    Probe,
    ProbeResult,
    batch_body,
    by_folder,
    pack,
    read_batch,
    relative_link,
)
from pbxsync.sync.sources.graph import GraphSource

log = logging.getLogger("pbxsync.exchange.graph.polling")

COLD_RETRY_SECONDS = 300.0
BATCH_KEY = "$batch"  # the GraphClient limit key of batch calls: at most max_connections at once

Emit = Callable[[str, Folder, str], None]


def age_seconds(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


class GraphPoller:
    """Probe rounds over a set of folders; one instance per feed (its schedule is per folder)."""

    def __init__(self, source: GraphSource, clock: FeedClock, schedule: PollSchedule, emit: Emit) -> None:
        self._source = source
        self._client = source.client
        self._clock = clock
        self.schedule = schedule
        self._emit = emit
        self._cold: dict[FolderKey, datetime] = {}  # folders without a link yet -> when a sync was asked for
        self.rounds = 0
        self.batches = 0
        self.probes = 0
        self.changes = 0
        self.failing: set[FolderKey] = set()
        self.last_round: datetime | None = None

    def next_due(self, folders: Sequence[FolderKey], now: datetime) -> datetime | None:
        return self.schedule.next_due(folders, now)

    async def round(self, folders: Sequence[FolderKey]) -> None:
        """Probe every due folder once and emit what changed."""
        now = self._clock.now()
        due = self.schedule.due(folders, now)
        if not due:
            return
        probes: list[Probe] = []
        for key in due:
            self.schedule.polled(key, now)
            links = self._source.probe_links(*key)
            urls = [relative_link(link, self._client.endpoint) for link in links]
            if not links or any(u is None for u in urls):
                last = self._cold.get(key)
                if last is None or (now - last).total_seconds() >= COLD_RETRY_SECONDS:
                    self._cold[key] = now
                    self._emit(key[0], key[1], "missed")
                continue
            self._cold.pop(key, None)
            probes.extend(Probe(key[0], key[1], u) for u in urls if u is not None)
        results = await self._probe(probes) if probes else []
        self._apply(results, now)
        self.rounds += 1
        self.last_round = now

    async def _probe(self, probes: list[Probe]) -> list[ProbeResult]:
        async def one(batch: list[Probe]) -> list[ProbeResult]:
            self.batches += 1
            self.probes += len(batch)
            try:
                answer = await self._client.request_json(BATCH_KEY, "POST", self._client.url("/$batch"),
                                                         batch_body(batch))
            except SourceError as exc:
                return [ProbeResult(p, "failed", None, " ".join(str(exc).split())[:200]) for p in batch]
            return read_batch(batch, answer)

        answers = await asyncio.gather(*(one(b) for b in pack(probes)))
        return [r for answer in answers for r in answer]

    def _apply(self, results: list[ProbeResult], now: datetime) -> None:
        newly_failing: list[ProbeResult] = []
        for key, group in by_folder(results).items():
            mailbox, folder = key
            outcomes = {r.outcome for r in group}
            for r in group:
                if r.outcome == "throttled":
                    wait = r.retry_after if r.retry_after is not None else self.schedule.interval(folder)
                    self.schedule.throttle(mailbox, now + timedelta(seconds=max(0.0, wait)))
                    self._client.hold(mailbox, wait)  # the sync's own requests for it wait too
            if "failed" in outcomes:
                if key not in self.failing:
                    self.failing.add(key)
                    newly_failing.append(next(r for r in group if r.outcome == "failed"))
            elif key in self.failing:
                self.failing.discard(key)
                log.info("graph polling: %s %s can be probed again", mailbox, folder.value)
            if "gone" in outcomes:
                self._emit(mailbox, folder, "missed")
            elif "changed" in outcomes:
                self.changes += 1
                self._emit(mailbox, folder, "poll")
        if newly_failing:  # once per folder until it works again, not every round
            first = newly_failing[0]
            log.warning("graph polling: %d folders cannot be probed (e.g. %s %s: %s); the timed sync covers "
                        "them", len(newly_failing), first.probe.mailbox, first.probe.folder.value, first.detail)

    def detail(self, now: datetime) -> str:
        sched = self.schedule
        text = (f"calendars every {sched.calendar_every:g} s, contacts every {sched.contacts_every:g} s "
                f"($batch); {self.rounds} rounds, {self.batches} batches, {self.changes} changes found")
        age = age_seconds(now, self.last_round)
        if age is not None:
            text += f"; last round {age:.0f} s ago"
        throttled = sched.throttled(now)
        if throttled:
            text += f"; throttled: {len(throttled)} mailboxes"
        if self.failing:
            text += f"; {len(self.failing)} folders cannot be probed"
        if self._cold:
            text += f"; {len(self._cold)} folders wait for their first sync"
        return text

