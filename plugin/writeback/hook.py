"""The write-back as a step after each sync pass of the daemon (wired by plugin.daemon.wiring)."""

from __future__ import annotations

import logging

from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Slot
from pbxsync.plugin.daemon.sync_timers import AfterPass, SyncService
from pbxsync.plugin.writeback.step import write_back
from pbxsync.sync.config import Config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.sources.writer import writer_for
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.writeback")


def writeback_hook(store: Store, config: Config, clock: Clock, sync: Slot[SyncService]) -> AfterPass:
    """After the bookings step: write the blocks through the sync's own source (EWS or Graph)."""

    async def write_after_pass(summary: PassSummary) -> None:
        service = sync.value
        engine = service.engine if service is not None else None
        writer = writer_for(engine.source) if engine is not None else None
        if writer is None:
            return
        result = await write_back(store, config, writer, clock.now())
        if result.writes or result.failed:
            log.info("write-back: %d meeting(s) written, %d failed (retried later), %d conflict(s)",
                     result.writes, result.failed, result.conflicts)

    return write_after_pass
