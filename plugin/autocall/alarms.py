"""Named one-shot alarms on the daemon's clock: AUTOCALL's start of each booking and its pre-start check.

`set(name, when, action)` runs `action()` once the clock reaches `when` (at once if it already has); setting
a name again moves its alarm, `cancel` drops it. Only a pending alarm can be moved or cancelled: an action
that has begun runs to its end (or until `close`), so an action may safely re-arm or cancel its own name.
The waits are `Clock.sleep_until`, so a test drives them with `FakeClock.advance`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from pbxsync.plugin.daemon.clock import Clock

log = logging.getLogger("pbxsync.autocall")

Action = Callable[[], Awaitable[None]]


class Alarms:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._pending: dict[str, tuple[datetime, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # pending and ringing, for close()

    def set(self, name: str, when: datetime, action: Action) -> None:
        self.cancel(name)
        task = asyncio.get_running_loop().create_task(self._ring(name, when, action), name=f"alarm-{name}")
        self._pending[name] = (when, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, name: str) -> None:
        entry = self._pending.pop(name, None)
        if entry is not None:
            entry[1].cancel()

    def pending(self) -> dict[str, datetime]:
        """The alarms that have not rung yet: name -> when."""
        return {name: when for name, (when, _) in self._pending.items()}

    async def close(self) -> None:
        """Cancel every alarm, ringing ones too, and wait until they are gone."""
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _ring(self, name: str, when: datetime, action: Action) -> None:
        await self._clock.sleep_until(when)
        entry = self._pending.get(name)
        if entry is not None and entry[1] is asyncio.current_task():
            del self._pending[name]  # rung: from here on it can no longer be moved or cancelled by name
        try:
            await action()
        except Exception:  # an alarm's failure is logged; the others ring on
            log.exception("autocall: %s failed", name)
