"""Asterisk's voicemail users as a second directory source, kept fresh by the daemon.

With `[pbx] voicemail_directory = true` this service asks Asterisk (AMI VoicemailUsersList, over the
daemon's one shared AMI link) for its voicemail users as soon as the link is logged in, then every
`voicemail_refresh_minutes` (0 = only once). The entries go to the `entries` slot; the bookings
step after each sync pass merges them under the config's [[users]] (the config wins on conflicts), so an
invitee known only as a voicemail user is matched from the next pass on.

A failed fetch keeps the entries of the last good one: a flaky link or a restarting Asterisk must not make
invitees drop out of bookings. It is retried after `RETRY_AFTER_FAILURE` (or the refresh period, if that is
shorter) and logged once per distinct error, not once per retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pbxsync.plugin import metrics
from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.ami.voicemail import fetch_voicemail_entries
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.plugin.daemon.sync_timers import AfterPass
from pbxsync.plugin.directory import DirectoryEntry
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.errors import PbxsyncError
from pbxsync.sync.model import utc_text

log = logging.getLogger("pbxsync.daemon.voicemail")

RETRY_AFTER_FAILURE = timedelta(minutes=1)

Fetch = Callable[[AmiClient], Awaitable[Sequence[DirectoryEntry]]]


class VoicemailDirectoryService(Service):
    name = "voicemail"

    def __init__(self, ami: AmiClient, published: Slot[tuple[DirectoryEntry, ...]], rebook: Slot[AfterPass],
                 clock: Clock, refresh_minutes: int, fetch: Fetch = fetch_voicemail_entries) -> None:
        """`published`: where the entries go (read by the bookings step); `rebook`: that step, re-run when the
        entries change."""
        super().__init__()
        self.ami = ami
        self.published = published
        self.rebook = rebook
        self.clock = clock
        self.refresh = timedelta(minutes=refresh_minutes) if refresh_minutes > 0 else None
        self.fetch = fetch
        # A restarted service (crash, SIGHUP) starts from what its predecessor fetched, not from nothing.
        self.entries: tuple[DirectoryEntry, ...] = published.value or ()
        self.fetched_at: datetime | None = None
        self.fetches = 0
        self.failures = 0
        self.last_error = ""

    async def run(self) -> None:
        while not self._stopped.is_set():
            if not await self._unless_stopped(self.ami.wait_connected()):
                return
            ok = await self.refresh_once()
            if ok and self.refresh is None:
                await self._stopped.wait()  # fetched once, as configured
                return
            delay = self.refresh if ok and self.refresh is not None else self._retry_delay()
            if not await self._unless_stopped(self.clock.sleep(delay.total_seconds())):
                return

    async def refresh_once(self) -> bool:
        """One fetch; on success the shared entries are replaced, on failure the old ones stay."""
        try:
            entries = tuple(await self.fetch(self.ami))
        except PbxsyncError as exc:
            self.failures += 1
            metrics.ERRORS.labels("ami").inc()
            error = " ".join(str(exc).split())[:300]
            if error != self.last_error:
                log.warning("voicemail directory: fetch failed, keeping %d entries%s: %s", len(self.entries),
                            f" from {utc_text(self.fetched_at)}" if self.fetched_at else "", error)
            self.last_error = error
            return False
        if self._stopped.is_set():
            return False  # stopping (maybe switched off by a reload): do not publish any more
        changed = entries != self.entries
        self.entries = entries
        self.fetched_at = self.clock.now()
        self.fetches += 1
        self.last_error = ""
        self.published.publish(entries)
        with_email = sum(1 for e in entries if e.emails)
        log.info("voicemail directory: %d voicemail users from Asterisk, %d with an e-mail address",
                 len(entries), with_email)
        rebook = self.rebook.value
        if changed and rebook is not None:
            await rebook(PassSummary(self.fetched_at))  # bookings see the new directory now, not next pass
        return True

    def _retry_delay(self) -> timedelta:
        return min(RETRY_AFTER_FAILURE, self.refresh) if self.refresh is not None else RETRY_AFTER_FAILURE

    async def _unless_stopped(self, awaitable: Awaitable[object]) -> bool:
        """Await `awaitable` unless stop() comes first; True when it finished."""
        work = asyncio.ensure_future(awaitable)
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        return work.done() and not work.cancelled() and not self._stopped.is_set()

    def health(self) -> Health:
        data: dict[str, Any] = {
            "entries": len(self.entries), "with_email": sum(1 for e in self.entries if e.emails),
            "fetched_at": utc_text(self.fetched_at) if self.fetched_at else None, "fetches": self.fetches,
            "failures": self.failures, "last_error": self.last_error or None,
            "refresh_minutes": int(self.refresh.total_seconds() // 60) if self.refresh else 0}
        if self.last_error:
            return Health(False, f"last fetch failed: {self.last_error}; using {len(self.entries)} entries", data)
        if self.fetched_at is None:
            return Health(True, "waiting for the AMI link to fetch the voicemail users", data)
        return Health(True, f"{len(self.entries)} voicemail users, fetched {data['fetched_at']}", data)
