"""Shared fixtures. The real-Asterisk ones are documented in tests/asterisk_harness.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.asterisk_harness import AsteriskInstance, AsteriskNotInstalled, sweep_stale_instances
from tests.asterisk_harness import asterisk_root as _find_asterisk_root


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
