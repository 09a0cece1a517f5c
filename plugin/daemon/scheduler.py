"""APScheduler 3.11 on the daemon's clock: the plan of the timed sync passes.

APScheduler owns the plan: jobs with their triggers (an interval per synced user, staggered), misfire grace
(a run found too late is skipped, the next one comes sooner) and coalescing (runs missed while the daemon
was suspended or busy become one). The daemon's `Clock` owns time: this scheduler never reads the wall
clock. A round (`run_due`) takes `now` from the clock, and its owner waits for the next run time with
`Clock.sleep_until` (`wait`), so `FakeClock.advance` drives it in tests like every other wait of the
daemon. docs/design.md ("Time: the clock and APScheduler") has the whole picture.

Jobs here are plain functions that only note work as due (the sync service then runs one pass for all
that is due): they run inline, in the round that finds them due, like APScheduler's DebugExecutor. APScheduler
3 reads `datetime.now` in `_process_jobs` and in its executors' misfire check; both are replaced here (the
round, `_ClockExecutor`), which is why this module uses a few of its protected names (pinned: APScheduler
>=3.11,<4; tests/unit/test_daemon_scheduler.py holds the behaviour).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor, MaxInstancesReachedError
from apscheduler.schedulers.base import STATE_RUNNING, BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from pbxsync.plugin.daemon.clock import Clock

log = logging.getLogger("pbxsync.daemon.scheduler")


class _ClockExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """Runs a due job's function at once, judging its misfire grace at the clock's `now`."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        events = []
        for run_time in run_times:
            late = self._clock.now() - run_time
            if job.misfire_grace_time is not None and late > timedelta(seconds=job.misfire_grace_time):
                log.info("%s skipped: %.0f s late, more than its grace of %s s", job.id, late.total_seconds(),
                         job.misfire_grace_time)
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, run_time))
                continue
            try:
                result = job.func(*job.args, **job.kwargs)
            except Exception:
                self._run_job_error(job.id, *sys.exc_info()[1:])
                return
            events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time, result))
        self._run_job_success(job.id, events)


class ClockScheduler(BaseScheduler):  # type: ignore[misc]  # APScheduler 3 ships no type hints
    """Jobs get an explicit `next_run_time` (`every`): APScheduler would otherwise ask the wall clock for it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._changed = asyncio.Event()
        super().__init__(timezone=UTC)

    def _create_default_executor(self) -> _ClockExecutor:
        return _ClockExecutor(self._clock)

    def wakeup(self) -> None:
        """APScheduler calls this when a job is added, moved or removed: the next `wait` ends at once."""
        self._changed.set()

    def shutdown(self, wait: bool = False) -> None:
        super().shutdown(wait)
        self._changed.set()

    def every(self, job_id: str, func: Callable[[], object], first: datetime, interval: timedelta,
              misfire_grace: timedelta) -> None:
        """Run `func` at `first`, then every `interval` on that grid; coalesced, skipped when found later than
        `misfire_grace`."""
        self.add_job(func, IntervalTrigger(seconds=interval.total_seconds(), start_date=first, timezone=UTC),
                     id=job_id, next_run_time=first, coalesce=True, max_instances=1, replace_existing=True,
                     misfire_grace_time=max(1, int(misfire_grace.total_seconds())))

    def run_due(self) -> datetime | None:
        """One round at the clock's `now`: run what is due (coalesced, within its grace); returns when the
        next job is due, None when there is none. APScheduler's `_process_jobs`, on our clock."""
        self._changed.clear()
        if self.state != STATE_RUNNING:
            return None
        now = self._clock.now()
        with self._jobstores_lock:
            for alias, store in self._jobstores.items():
                for job in store.get_due_jobs(now):
                    run_times = job._get_run_times(now)
                    run_times = run_times[-1:] if run_times and job.coalesce else run_times
                    if not run_times:
                        continue
                    try:
                        self._lookup_executor(job.executor).submit_job(job, run_times)
                    except MaxInstancesReachedError:
                        log.warning("%s skipped: still running", job.id)
                    following = job.trigger.get_next_fire_time(run_times[-1], now)
                    if following is not None:
                        job._modify(next_run_time=following)
                        store.update_job(job)
                    else:
                        self.remove_job(job.id, alias)
            due = [t for t in (store.get_next_run_time() for store in self._jobstores.values()) if t is not None]
        return min(due) if due else None

    async def wait(self, when: datetime | None) -> None:
        """Until the clock reaches `when` (None: no job is due) or the jobs change."""
        changed = asyncio.ensure_future(self._changed.wait())
        waits: set[asyncio.Future[Any]] = {changed}
        if when is not None:
            waits.add(asyncio.ensure_future(self._clock.sleep_until(when)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
