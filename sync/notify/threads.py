"""Blocking calls awaited from asyncio, each in a daemon thread of its own.

Not `asyncio.to_thread`: its pool's threads are joined when the process exits, so a call blocked on the
network (a GetStreamingEvents held for minutes) would hold up the agent's stop. A daemon thread is left
behind instead; its result, if it ever comes, is dropped once the loop is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run `fn(*args)` in a new daemon thread; the future settles on the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def report(result: T | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this any more
            loop.call_soon_threadsafe(settle, result, error)

    def body() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine, whatever it is
            report(None, exc)
            return
        report(result, None)

    threading.Thread(target=body, name="pbxsync-exchange-call", daemon=True).start()
    return future
