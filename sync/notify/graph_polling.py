"""Fast Graph delta polling as plain data: which folders are due, how probes are packed into `$batch`
calls, and what each answer means. Pure functions; `graph_feed` does the requests.

The probe. The sync engine owns each folder's delta state: its deltaLink is where the NEXT incremental
sync starts (`GraphSource.probe_links`). A probe GETs that same link with `Prefer: odata.maxpagesize=1`
and throws the answer away: a delta query only reads, and the link stays valid, so the sync's state is
neither advanced nor invalidated (a probe that kept its answer would swallow the change it found).
The answer says enough: an empty page ending in a deltaLink means "nothing changed"; a row, or a
nextLink (more to come), means "changed" and the folder is synced the normal way; 410 Gone means the
delta state expired and the sync will start over ("missed"). A false "changed" costs one cheap
incremental sync; a missed change is impossible unless the link itself lies. Until a folder's first sync
in this process there is no link to probe: the feed asks for that sync instead.

Batching. At most 20 requests per `$batch` (Graph's limit) and at most 4 per mailbox in one batch
(Graph's per-mailbox concurrency applies inside a batch too). A 429/503 inside a batch holds back only
that mailbox, for its Retry-After; every request inside a batch still counts against the mailbox's
throttling budget, so batching saves connections and round trips, not quota.

Schedule. Calendars every `poll_seconds`, contacts every `contacts_poll_seconds` (0 = not polled),
each folder on its own clock from its last probe, a throttled mailbox not before its Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pbxsync.sync.model import Folder

MAX_BATCH = 20
MAX_PER_MAILBOX = 4
PROBE_PREFER = "odata.maxpagesize=1"
THROTTLED_STATUSES = (429, 503, 504)

FolderKey = tuple[str, Folder]
Outcome = Literal["changed", "unchanged", "gone", "throttled", "failed"]


@dataclass(frozen=True)
class Probe:
    mailbox: str
    folder: Folder
    url: str  # relative to the Graph endpoint, as $batch wants it ("/users/...")


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    outcome: Outcome
    retry_after: float | None = None
    detail: str = ""


def relative_link(link: str, endpoint: str) -> str | None:
    """A deltaLink as a $batch url (the part after ".../v1.0"); None when it is not on our endpoint."""
    base = endpoint.rstrip("/")
    if not link.lower().startswith(base.lower() + "/"):
        return None
    return link[len(base):]


def pack(probes: Iterable[Probe], size: int = MAX_BATCH, per_mailbox: int = MAX_PER_MAILBOX) -> list[list[Probe]]:
    """Probes in batches of at most `size`, with at most `per_mailbox` of one mailbox in a batch."""
    batches: list[list[Probe]] = []
    counts: list[dict[str, int]] = []
    first_open = 0
    for probe in probes:
        index = first_open
        while index < len(batches) and (len(batches[index]) >= size
                                        or counts[index].get(probe.mailbox, 0) >= per_mailbox):
            index += 1
        if index == len(batches):
            batches.append([])
            counts.append({})
        batches[index].append(probe)
        counts[index][probe.mailbox] = counts[index].get(probe.mailbox, 0) + 1
        while first_open < len(batches) and len(batches[first_open]) >= size:
            first_open += 1
    return batches


def batch_body(batch: Sequence[Probe]) -> dict[str, Any]:
    return {"requests": [{"id": str(i), "method": "GET", "url": p.url, "headers": {"Prefer": PROBE_PREFER}}
                         for i, p in enumerate(batch, 1)]}


def _retry_after(headers: object) -> float | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == "retry-after":
            text = str(value).strip()
            return float(text) if text.isdigit() else None
    return None


def probe_outcome(status: object, headers: object, body: object) -> tuple[Outcome, float | None, str]:
    """What one probe's answer (inside a batch) says about its folder."""
    if status == 200:
        value = body.get("value") if isinstance(body, dict) else None
        if isinstance(body, dict) and ((isinstance(value, list) and value) or "@odata.nextLink" in body):
            return "changed", None, ""
        if isinstance(body, dict) and isinstance(value, list) and "@odata.deltaLink" in body:
            return "unchanged", None, ""
        return "failed", None, "an unusable delta page"
    if status == 410:
        return "gone", None, ""
    if status in THROTTLED_STATUSES:
        return "throttled", _retry_after(headers), f"HTTP {status}"
    code = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raw = body["error"].get("code")
        code = raw[:60] if isinstance(raw, str) else ""
    return "failed", None, f"HTTP {status}" + (f" {code}" if code else "")


def read_batch(batch: Sequence[Probe], answer: object) -> list[ProbeResult]:
    """Pair a $batch answer's responses with the probes by id (Graph answers in any order)."""
    responses = answer.get("responses") if isinstance(answer, dict) else None
    by_id: dict[str, dict[str, Any]] = {}
    if isinstance(responses, list):
        for response in responses:
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                by_id.setdefault(response["id"], response)
    results = []
    for i, probe in enumerate(batch, 1):
        response = by_id.get(str(i))
        if response is None:
            results.append(ProbeResult(probe, "failed", None, "no response in the batch"))
            continue
        outcome, retry_after, detail = probe_outcome(response.get("status"), response.get("headers"),
                                                     response.get("body"))
        results.append(ProbeResult(probe, outcome, retry_after, detail))
    return results


@dataclass
class PollSchedule:
    """When each folder is probed next. Intervals in seconds; 0 = that kind of folder is not polled."""

    calendar_every: float
    contacts_every: float
    last: dict[FolderKey, datetime] = field(default_factory=dict)
    not_before: dict[str, datetime] = field(default_factory=dict)  # mailbox -> throttled until

    def interval(self, folder: Folder) -> float:
        return self.calendar_every if folder is Folder.CALENDAR else self.contacts_every

    def due_at(self, key: FolderKey, now: datetime) -> datetime | None:
        """When `key` is probed next: at once if never, else an interval after its last probe, and not
        before its mailbox's throttle ends. None when its kind of folder is not polled."""
        every = self.interval(key[1])
        if every <= 0:
            return None
        last = self.last.get(key)
        due = now if last is None else last + timedelta(seconds=every)
        hold = self.not_before.get(key[0])
        return due if hold is None else max(due, hold)

    def due(self, folders: Iterable[FolderKey], now: datetime) -> list[FolderKey]:
        return [k for k in folders if (at := self.due_at(k, now)) is not None and at <= now]

    def next_due(self, folders: Iterable[FolderKey], now: datetime) -> datetime | None:
        return min((at for k in folders if (at := self.due_at(k, now)) is not None), default=None)

    def polled(self, key: FolderKey, now: datetime) -> None:
        self.last[key] = now

    def throttle(self, mailbox: str, until: datetime) -> None:
        self.not_before[mailbox] = max(until, self.not_before.get(mailbox, until))

    def throttled(self, now: datetime) -> list[str]:
        return sorted(m for m, until in self.not_before.items() if until > now)


def by_folder(results: Iterable[ProbeResult]) -> Mapping[FolderKey, list[ProbeResult]]:
    """A folder may have several links (one per contact folder): group their results."""
    grouped: dict[FolderKey, list[ProbeResult]] = {}
    for result in results:
        grouped.setdefault((result.probe.mailbox, result.probe.folder), []).append(result)
    return grouped
