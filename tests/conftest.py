"""Fixtures for every test folder: an empty store, and the real Asterisk (documented in
tests/support/asterisk_harness.py). Fixtures one folder needs live in that folder's conftest.py; plain
helpers in tests/support/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from pbxsync.sync.store.db import Store, open_store
from tests.support.asterisk_harness import AsteriskInstance, AsteriskNotInstalled, sweep_stale_instances
from tests.support.asterisk_harness import asterisk_root as _find_asterisk_root
from tests.support.browser import BrowserMissing, start_chromium


@pytest.fixture(scope="session")
def asterisk_root() -> Path:
    try:
        root = _find_asterisk_root()
    except AsteriskNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    sweep_stale_instances(root)
    return root


@pytest.fixture
def asterisk_factory(asterisk_root: Path) -> Iterator[Callable[..., AsteriskInstance]]:
    made: list[AsteriskInstance] = []

    def start_asterisk(**options: Any) -> AsteriskInstance:
        instance = AsteriskInstance(asterisk_root, **options)
        made.append(instance)
        instance.start()
        return instance

    yield start_asterisk
    for instance in made:
        print(instance.log_tail())  # shown by pytest only when the test failed
        instance.cleanup()


@pytest.fixture
def asterisk(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return asterisk_factory()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    """An empty, migrated store in memory."""
    s = await open_store(":memory:")
    yield s
    await s.close()


@pytest.fixture
async def store_on_disk(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty, migrated store in the file `tmp_path / "pbxsync.db"` (where a config built on tmp_path
    points), for tests that need what only a file gives."""
    s = await open_store(tmp_path / "pbxsync.db")
    yield s
    await s.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the whole run (tests/support/browser.py); missing, it fails the test."""
    try:
        driver = start_chromium()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with tiny costs for web tests (the real profile takes ~0.5 s per hash on a busy CI box)."""
    from argon2 import PasswordHasher

    from pbxsync.plugin.web import accounts

    monkeypatch.setattr(accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))


@pytest.fixture
def web_portal(tmp_path: Path, cheap_argon2: None) -> Iterator[Any]:
    """The portal served from a thread (tests/support/web_portal.py) over a store with the test users and
    their sync state (`fill_sync_state`): for browser tests."""
    from pbxsync.plugin.daemon.clock import FakeClock
    from tests.support.web_portal import fill_sync_state, portal_in_thread

    async def fill(store: Store) -> None:
        await fill_sync_state(store, FakeClock())

    with portal_in_thread(tmp_path, fill) as running:
        yield running
