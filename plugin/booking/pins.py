"""Per-booking conference PINs (`[conference] pins = true`): generated once, kept in table booking_pins.

`ensure_pins` runs after each sync pass: every scheduled booking that has not ended gets a random
numeric PIN if it has none. Guessing one over FastAGI is slowed down per booking and per caller (see
plugin.agi.room); longer PINs (`[conference] pin_digits`) make it slower still. `booking_pin` is for
`pbxsync conferences` to show it.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store, in_batches

PIN_DIGITS = 6


def new_pin(digits: int = PIN_DIGITS) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


async def ensure_pins(store: Store, now: datetime, digits: int = PIN_DIGITS) -> int:
    """Give every running or future scheduled booking a PIN of `digits` digits (`[conference] pin_digits`);
    returns how many were created."""
    async with store.conn.execute(
        """SELECT b.id FROM bookings b LEFT JOIN booking_pins p ON p.booking_id = b.id
           WHERE b.state = 'scheduled' AND b.end_utc > ? AND p.booking_id IS NULL""", (utc_text(now),)
    ) as cur:
        missing = [int(r[0]) for r in await cur.fetchall()]
    if not missing:
        return 0
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT OR IGNORE INTO booking_pins (booking_id, pin, created_at) VALUES (?, ?, ?)",
            [(booking_id, new_pin(digits), utc_text(now)) for booking_id in missing],
        )
    return len(missing)


async def booking_pin(store: Store, booking_id: int) -> str | None:
    async with store.conn.execute("SELECT pin FROM booking_pins WHERE booking_id = ?", (booking_id,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def booking_pins(store: Store, booking_ids: list[int]) -> dict[int, str]:
    """PINs of several bookings at once (for listings)."""
    if not booking_ids:
        return {}
    pins: dict[int, str] = {}
    for chunk, marks in in_batches(booking_ids):
        async with store.conn.execute(
            f"SELECT booking_id, pin FROM booking_pins WHERE booking_id IN ({marks})", chunk
        ) as cur:
            pins.update({int(b): str(p) async for b, p in cur})
    return pins
