"""Each synced number's display forms (national, international), stored beside it for *My contacts*.

Formatting a number with `phonenumbers` costs ~50 µs; a search answer shows up to a hundred numbers, so
formatting them on every keystroke took ~6 ms of the event loop every other request waits behind. The
sync stores numbers without these forms (migration 0014: NULL), so its own speed does not change; the
portal fills them in after start and after each pass that changed contacts, in small batches between which
the event loop serves requests. A number not formatted yet is formatted when it is shown.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import phonenumbers

from pbxsync.sync.errors import PbxsyncError
from pbxsync.sync.store.db import Store, store_error

log = logging.getLogger("pbxsync.web")

READ_BATCH = 200  # numbers read and written in one transaction
FORMAT_SLICE = 50  # numbers formatted between two turns of the event loop (~2.5 ms)


def number_forms(raw: str, e164: str | None) -> tuple[str, str]:
    """(national, international) display forms; (as typed, "") when the number has no E.164 form."""
    if e164:
        try:
            parsed = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return raw, e164
        return (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    return raw, ""


async def fill_number_forms(store: Store) -> int:
    """Format every stored number that has no display forms yet; returns how many were written."""
    written, after = 0, 0
    while True:
        async with store.conn.execute(
            "SELECT rowid, raw, e164 FROM contact_phones WHERE rowid > ? AND national IS NULL ORDER BY rowid LIMIT ?",
            (after, READ_BATCH),
        ) as cur:
            rows = [(int(rowid), str(raw), e164) for rowid, raw, e164 in await cur.fetchall()]
        if not rows:
            return written
        updates: list[tuple[str, str, int, str, str | None]] = []
        for start in range(0, len(rows), FORMAT_SLICE):
            if start:
                await asyncio.sleep(0)
            updates += [(*number_forms(raw, e164), rowid, raw, e164)
                        for rowid, raw, e164 in rows[start:start + FORMAT_SLICE]]
        async with store.transaction() as conn:
            # The number may have been replaced since it was read (a sync rewrites a changed contact's
            # numbers, and SQLite can hand a freed rowid out again): only the very same number is updated.
            cur = await conn.executemany(
                "UPDATE contact_phones SET national = ?, international = ? "
                "WHERE rowid = ? AND national IS NULL AND raw = ? AND e164 IS ?", updates)
            written += max(cur.rowcount, 0)
        after = rows[-1][0]
        await asyncio.sleep(0)


class NumberFormsFiller:
    """Runs `fill_number_forms` in the background, one run at a time; a wake during a run runs it again."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def wake(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run(), name="pbxsync-web-number-forms")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                written = await fill_number_forms(self.store)
            except (PbxsyncError, sqlite3.Error) as exc:  # busy or broken store: the next pass wakes it again
                error = store_error(exc, "storing number display forms") if isinstance(exc, sqlite3.Error) else exc
                log.warning("%s", error)
                return
            if written:
                log.info("number display forms stored for %d numbers", written)
            if not self._again:
                return

    async def idle(self) -> None:
        """Until the current run (if any) has finished."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

