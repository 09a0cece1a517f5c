""""Sync now" from the portal: at most one background pass per user at a time.

The request that starts it returns at once; the page follows the pass (plugin.web.sync_status). The daemon
joins concurrent requests for the same user into one pass anyway; this keeps a page from starting a
second while its first runs, and remembers how the last one ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pbxsync.sync.errors import PbxsyncError

log = logging.getLogger("pbxsync.web")

SyncTrigger = Callable[[str], Awaitable[Any]]  # one pass for the user with this extension
ClockNow = Callable[[], datetime]


@dataclass
class SyncJob:
    extension: str
    started: datetime
    task: asyncio.Task[None] | None = None
    finished: datetime | None = None
    failed: str | None = None  # why the pass could not run at all (not a folder's error)

    @property
    def running(self) -> bool:
        return self.finished is None


@dataclass
class SyncJobs:
    jobs: dict[str, SyncJob] = field(default_factory=dict)  # extension -> the latest job

    def latest(self, extension: str) -> SyncJob | None:
        return self.jobs.get(extension)

    def start(self, extension: str, now: datetime, sync_now: SyncTrigger, clock_now: ClockNow) -> SyncJob:
        """A new background pass for `extension`, or the one already running."""
        job = self.jobs.get(extension)
        if job is not None and job.running:
            return job
        job = self.jobs[extension] = SyncJob(extension, now)
        job.task = asyncio.create_task(self._run(job, sync_now, clock_now), name=f"web-sync-{extension}")
        return job

    async def _run(self, job: SyncJob, sync_now: SyncTrigger, clock_now: ClockNow) -> None:
        try:
            await sync_now(job.extension)
        except Exception as exc:  # the daemon's sync is not running, the user left the config: say so
            log.warning("web Sync now for %s failed: %s", job.extension, exc)
            job.failed = failure_words(exc)
        finally:
            job.finished = clock_now()

    async def close(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def failure_words(exc: Exception) -> str:
    """What the employee reads: our own errors are written for people (and never carry a secret); anything
    else may name internals, so it stays in the log and the page says only that the pass did not run."""
    if isinstance(exc, PbxsyncError):
        return " ".join(str(exc).split())[:200] or type(exc).__name__
    return "The sync could not run; your administrator finds the reason in pbxsync's log."
