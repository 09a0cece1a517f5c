"""The write-back's tables (migrations/*_write_back.sql): each booking's organizer copy and what happened.

`load_candidates` joins each booking that has not ended with its organizer's synced copy (single meetings
only, see plugin.writeback.plan) and its PIN; the other functions read and store `WriteRecord`s and the
mailboxes Exchange refused writes for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pbxsync.plugin.writeback.plan import Candidate, WriteRecord, WriteState
from pbxsync.plugin.writeback.render import JoinDetails
from pbxsync.sync.config import PbxConfig
from pbxsync.sync.model import parse_utc, utc_text
from pbxsync.sync.store.db import Store, in_batches


async def load_candidates(store: Store, pbx: PbxConfig, now: datetime) -> list[Candidate]:
    """Every booking of a single meeting that has not ended, whose organizer's own copy is synced."""
    found: list[Candidate] = []
    async with store.conn.execute(
        """SELECT b.id, b.state, b.room, b.autocall, b.start_utc, b.end_utc, b.timezone, p.pin,
                  o.mailbox, o.item_id, o.change_key
           FROM bookings b
           JOIN occurrences o ON o.uid = b.uid AND o.recurrence_id IS NULL AND o.series_item_id = ''
                AND lower(o.mailbox) = lower(b.organizer_email)
           LEFT JOIN booking_pins p ON p.booking_id = b.id
           WHERE b.recurrence_key = '' AND b.end_utc > ?
           ORDER BY b.id""", (utc_text(now),)
    ) as cur:
        async for row in cur:
            details = None
            if row[1] == "scheduled" and row[2]:
                details = JoinDetails(
                    room=str(row[2]), pin=str(row[7]) if row[7] else None, autocall=bool(row[3]),
                    start=parse_utc(row[4]), end=parse_utc(row[5]), timezone=str(row[6]),
                    dial_in_numbers=tuple(pbx.dial_in_numbers), dial_in_room=pbx.dial_in_room)
            found.append(Candidate(int(row[0]), str(row[8]).lower(), str(row[9]), str(row[10]), details))
    return found


def _record(row: Sequence[object]) -> WriteRecord:
    return WriteRecord(booking_id=int(str(row[0])), mailbox=str(row[1]), item_id=str(row[2]), tag=str(row[3]),
                       change_key=str(row[4]), state=WriteState(str(row[5])), attempts=int(str(row[6])),
                       next_attempt_at=parse_utc(str(row[7])) if row[7] else None, last_error=str(row[8]))


_RECORD_COLUMNS = "booking_id, mailbox, item_id, tag, change_key, state, attempts, next_attempt_at, last_error"


async def load_records(store: Store) -> dict[int, WriteRecord]:
    async with store.conn.execute(f"SELECT {_RECORD_COLUMNS} FROM write_backs") as cur:
        return {r.booking_id: r for r in map(_record, await cur.fetchall())}


async def records_for(store: Store, booking_ids: Sequence[int]) -> dict[int, WriteRecord]:
    """The write-back records of some bookings (for listings)."""
    found: dict[int, WriteRecord] = {}
    for chunk, marks in in_batches(list(booking_ids)):
        async with store.conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM write_backs WHERE booking_id IN ({marks})", chunk) as cur:
            found.update({r.booking_id: r for r in map(_record, await cur.fetchall())})
    return found


@dataclass(frozen=True)
class ReadOnlyMailbox:
    mailbox: str
    since: datetime
    recheck_at: datetime
    reason: str


async def read_only_mailboxes(store: Store) -> dict[str, ReadOnlyMailbox]:
    async with store.conn.execute("SELECT mailbox, since, recheck_at, reason FROM write_back_read_only") as cur:
        return {str(m): ReadOnlyMailbox(str(m), parse_utc(s), parse_utc(r), str(why))
                for m, s, r, why in await cur.fetchall()}


async def save_outcomes(store: Store, records: Iterable[WriteRecord], now: datetime,
                        read_only: Iterable[ReadOnlyMailbox] = (), writable: Iterable[str] = ()) -> None:
    """Store the pass's outcomes in one transaction; `read_only` mailboxes refused a write, `writable` ones
    (read-only before) took one again."""
    rows = [(r.booking_id, r.mailbox, r.item_id, r.tag, r.change_key, r.state.value, r.attempts,
             utc_text(r.next_attempt_at) if r.next_attempt_at else None, r.last_error[:300], utc_text(now))
            for r in records]
    async with store.transaction() as conn:
        await conn.executemany(
            f"INSERT OR REPLACE INTO write_backs ({_RECORD_COLUMNS}, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        await conn.executemany(
            "INSERT OR REPLACE INTO write_back_read_only (mailbox, since, recheck_at, reason) VALUES (?,?,?,?)",
            [(m.mailbox, utc_text(m.since), utc_text(m.recheck_at), m.reason[:300]) for m in read_only])
        await conn.executemany("DELETE FROM write_back_read_only WHERE mailbox = ?", [(m,) for m in writable])


def write_back_json(record: WriteRecord) -> dict[str, Any]:
    """A booking's write-back as `pbxsync conferences --json` shows it."""
    return {"state": record.state.value, "error": record.last_error or None, "attempts": record.attempts,
            "next_attempt_at": utc_text(record.next_attempt_at) if record.next_attempt_at else None}


def write_back_cell(shown: dict[str, Any] | None) -> str:
    """The JOIN BLOCK column of `pbxsync conferences`."""
    if shown is None:
        return "-"
    if shown["next_attempt_at"]:
        return f"{shown['state']}, retry {shown['next_attempt_at'][11:16]}"
    return str(shown["state"])


async def mailbox_write_backs(store: Store) -> dict[str, dict[str, Any]]:
    """Per organizer mailbox: whether it is read-only for write-back and its meetings by state (for
    `pbxsync users`)."""
    shown: dict[str, dict[str, Any]] = {}
    async with store.conn.execute("SELECT mailbox, state, count(*) FROM write_backs GROUP BY mailbox, state") as cur:
        for mailbox, state, n in await cur.fetchall():
            entry = shown.setdefault(str(mailbox), {"read_only": None, "meetings": {}})
            entry["meetings"][str(state)] = int(n)
    for mailbox, blocked in (await read_only_mailboxes(store)).items():
        entry = shown.setdefault(mailbox, {"read_only": None, "meetings": {}})
        entry["read_only"] = {"since": utc_text(blocked.since), "recheck_at": utc_text(blocked.recheck_at),
                              "reason": blocked.reason}
    return shown


def write_back_status(shown: dict[str, Any] | None) -> str:
    """The WRITE-BACK column of `pbxsync users`."""
    if shown is None:
        return "-"
    if shown["read_only"]:
        return f"READ-ONLY since {shown['read_only']['since'][:16]}: {shown['read_only']['reason']}"
    return ", ".join(f"{n} {state}" for state, n in sorted(shown["meetings"].items())) or "-"
