"""exchangelib runs in the EWS source's own thread pool: asyncio's default executor has cpu_count + 4
threads (6 on a two-core PBX), fewer than the default 8 mailboxes at once, and silently capped them."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

from pbxsync.sync.config import ExchangeConfig, SyncConfig
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.ews_backend import EWS
from tests.support.write_back import config_for


async def test_as_many_jobs_run_at_once_as_the_pool_has_threads() -> None:
    source = EwsSource(ExchangeConfig(server="http://127.0.0.1:9/ews", auth="basic", username="svc"), [],
                       threads=12)
    together = threading.Barrier(12, timeout=30)  # with fewer threads it breaks instead of opening
    try:
        await asyncio.gather(*(source._in_thread(together.wait) for _ in range(12)))
    finally:
        await source.close()


async def test_the_backend_sizes_the_pool_to_mailboxes_at_once_times_connections(tmp_path: Path) -> None:
    config = config_for(tmp_path / "pbxsync.db")
    config = replace(config, sync=replace(config.sync, concurrency=20),
                     exchange=replace(config.exchange, max_connections=4))
    source = EWS.make_source(config)
    assert isinstance(source, EwsSource)
    try:
        assert source._thread_count == 80
        assert EwsSource(config.exchange, config.users)._thread_count == 32
        assert SyncConfig().concurrency * ExchangeConfig().max_connections <= 32  # the defaults fit the default
    finally:
        await source.close()
