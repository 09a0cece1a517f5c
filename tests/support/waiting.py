"""Waiting for work that runs outside the test's control (real HTTP in threads, another process).

Where time matters the tests move a FakeClock; what remains is real IO, awaited by polling a condition
with a deadline, never by sleeping a guessed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(check: Callable[[], object], within: float = 20.0) -> None:
    """Let the loop (and threads doing real IO) run until `check()` is true; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)  # polling interval, not a wait for an outcome
