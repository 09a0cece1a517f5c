"""Reading and writing AUTOCALL attempts (table autocall_attempts, migration 0003).

Every write runs shielded from cancellation: a task cancelled mid-transaction (agent stopping) would
otherwise leave BEGIN without COMMIT/ROLLBACK on the shared connection (Store.transaction awaits BEGIN
outside its try), and the next writer would fail with "cannot start a transaction within a transaction".
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pbxsync.plugin.autocall.planner import Attempt, Outcome, PlannedCall
from pbxsync.sync.model import parse_utc, utc_text
from pbxsync.sync.store.db import Store, in_batches

T = TypeVar("T")
_COLUMNS = "participant_id, attempt, outcome, created_at, finished_at, channel_id"


def _attempt(row: Any) -> Attempt:
    return Attempt(row[0], row[1], Outcome(row[2]), parse_utc(row[3]),
                   parse_utc(row[4]) if row[4] else None, row[5])


async def load_attempts(store: Store, booking_id: int) -> list[Attempt]:
    async with store.conn.execute(
            f"SELECT {_COLUMNS} FROM autocall_attempts WHERE booking_id = ? ORDER BY participant_id, attempt",
            (booking_id,)) as cur:
        return [_attempt(r) async for r in cur]


async def _record_planned(store: Store, call: PlannedCall, now: datetime) -> bool:
    """Store the attempt as pending BEFORE it is sent. False if that attempt already exists (never re-send)."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "INSERT OR IGNORE INTO autocall_attempts (booking_id, participant_id, extension, attempt, channel_id, "
            "outcome, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
            (call.booking_id, call.participant_id, call.extension, call.attempt, call.channel_id, utc_text(now)))
        return cur.rowcount == 1


async def _record_outcome(store: Store, channel_id: str, outcome: Outcome, reason: str, detail: str,
                         now: datetime) -> None:
    async with store.transaction() as conn:
        await conn.execute(
            "UPDATE autocall_attempts SET outcome = ?, reason = ?, detail = ?, finished_at = ? "
            "WHERE channel_id = ? AND outcome = 'pending'",
            (outcome.value, reason or None, detail[:500] or None, utc_text(now), channel_id))


async def _record_joined(store: Store, channel_id: str, now: datetime) -> bool:
    async with store.transaction() as conn:
        cur = await conn.execute(
            "UPDATE autocall_attempts SET joined_at = COALESCE(joined_at, ?), "
            "outcome = CASE WHEN outcome IN ('pending', 'unknown') THEN 'answered' ELSE outcome END, "
            "finished_at = COALESCE(finished_at, ?) WHERE channel_id = ?",
            (utc_text(now), utc_text(now), channel_id))
        return cur.rowcount == 1


async def _settle_stale_pending(store: Store, now: datetime) -> int:
    """At start: attempts left pending by a previous process may have been dialled; they become unknown."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "UPDATE autocall_attempts SET outcome = 'unknown', detail = 'agent restarted before the outcome', "
            "finished_at = ? WHERE outcome = 'pending'", (utc_text(now),))
        return cur.rowcount


async def channel_ids(store: Store, booking_id: int) -> dict[str, str]:
    """channel_id -> extension for a booking (to recognise our calls among the room's members)."""
    async with store.conn.execute(
            "SELECT channel_id, extension FROM autocall_attempts WHERE booking_id = ?", (booking_id,)) as cur:
        return {r[0]: r[1] async for r in cur}


@dataclass(frozen=True)
class ParticipantCallState:
    """What `pbxsync conferences --json` shows per participant under "autocall"."""

    outcome: str  # the last attempt's outcome, "" when never called
    attempts: int  # attempts that were really sent
    joined: bool
    last_attempt_at: str

    def as_json(self) -> dict[str, object]:
        return {"outcome": self.outcome or None, "attempts": self.attempts, "joined": self.joined,
                "last_attempt_at": self.last_attempt_at or None}


async def call_states(store: Store, booking_ids: Iterable[int]) -> dict[tuple[int, str], ParticipantCallState]:
    """(booking_id, extension) -> call state, for the conferences listing. Missing key: never called."""
    ids = sorted(set(booking_ids))
    if not ids:
        return {}
    rows: dict[tuple[int, str], list[Any]] = {}
    for chunk, marks in in_batches(ids):  # each booking's attempts are in one chunk, still in order
        async with store.conn.execute(
                f"SELECT booking_id, extension, attempt, outcome, joined_at, created_at FROM autocall_attempts "
                f"WHERE booking_id IN ({marks}) ORDER BY booking_id, extension, attempt", chunk) as cur:
            async for r in cur:
                rows.setdefault((r[0], r[1]), []).append(r)
    out: dict[tuple[int, str], ParticipantCallState] = {}
    for key, attempts in rows.items():
        sent = [a for a in attempts if a[3] != Outcome.NOT_SENT.value]
        last = sent[-1] if sent else attempts[-1]
        out[key] = ParticipantCallState(last[3], len(sent), any(a[4] for a in attempts), last[5])
    return out


_IN_FLIGHT: set[asyncio.Task[Any]] = set()


async def _shielded(coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.get_running_loop().create_task(coro)
    _IN_FLIGHT.add(task)
    task.add_done_callback(_IN_FLIGHT.discard)
    return await asyncio.shield(task)


async def drain_writes() -> None:
    """Wait for writes whose callers were cancelled (call before closing the store)."""
    while _IN_FLIGHT:
        await asyncio.wait(set(_IN_FLIGHT))


async def record_planned(store: Store, call: PlannedCall, now: datetime) -> bool:
    """Store the attempt as pending BEFORE it is sent. False if that attempt already exists (never re-send)."""
    return await _shielded(_record_planned(store, call, now))


async def record_outcome(store: Store, channel_id: str, outcome: Outcome, reason: str, detail: str,
                         now: datetime) -> None:
    await _shielded(_record_outcome(store, channel_id, outcome, reason, detail, now))


async def record_joined(store: Store, channel_id: str, now: datetime) -> bool:
    return await _shielded(_record_joined(store, channel_id, now))


async def settle_stale_pending(store: Store, now: datetime) -> int:
    """At start: attempts left pending by a previous process may have been dialled; they become unknown."""
    return await _shielded(_settle_stale_pending(store, now))
