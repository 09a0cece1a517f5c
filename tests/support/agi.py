"""FastAGI test helpers: play Asterisk's side of a request, and put contacts and bookings into a store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime

from pbxsync.plugin.agi.callerid import normalise
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

_ids = itertools.count(1)


def env_block(script: str = "callerid", **extra: str) -> bytes:
    env = {"network": "yes", "network_script": script, "request": f"agi://127.0.0.1:4573/{script}",
           "channel": "Local/101@test-00000001;2", "callerid": "03012344711", "calleridname": "Trunk",
           "extension": "101", "dnid": "101", **extra}
    return "".join(f"agi_{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


async def fake_asterisk(port: int, block: bytes, answer: Callable[[str], str] | None = None,
                        max_commands: int = 20) -> list[str]:
    """Play Asterisk: send the request, answer each command (default `200 result=1`), return the commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[str] = []
    try:
        writer.write(block)
        await writer.drain()
        for _ in range(max_commands):
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            command = line.decode().rstrip("\n")
            commands.append(command)
            writer.write(((answer or (lambda c: "200 result=1"))(command) + "\n").encode())
            await writer.drain()
    finally:
        writer.close()
    return commands


def set_variables(commands: list[str]) -> dict[str, str]:
    """The variables an AGI conversation set (`SET VARIABLE NAME "value"`), the last value of each."""
    variables: dict[str, str] = {}
    for c in commands:
        if c.startswith("SET VARIABLE "):
            name, value = c[len("SET VARIABLE "):].split(" ", 1)
            variables[name] = value.strip('"')
    return variables


async def add_contact(store: Store, mailbox: str, name: str, *numbers: str, region: str = "DE") -> int:
    async with store.transaction() as conn:
        async with conn.execute(
            "INSERT INTO contacts (mailbox, item_id, change_key, display_name, updated_at) "
            "VALUES (?, ?, 'ck', ?, '2026-01-01T00:00:00+00:00') RETURNING id", (mailbox, f"item{next(_ids)}", name)
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        for raw in numbers:
            e164, digits = normalise(raw, region)  # as the sync stores it
            await conn.execute("INSERT INTO contact_phones (contact_id, kind, raw, e164, digits) VALUES (?,?,?,?,?)",
                               (row[0], "business", raw, e164, digits))
    return int(row[0])


async def insert_booking(store: Store, room: str, start: datetime, end: datetime, organizer: str = "101",
                         state: str = "scheduled", uid: str = "uid-1") -> int:
    async with store.transaction() as conn, conn.execute(
        """INSERT INTO bookings (uid, recurrence_key, subject, location, start_utc, end_utc, timezone, autocall,
                                     state, room, organizer_email, organizer_extension, created_at, updated_at)
               VALUES (?, '', 'Weekly', 'PBX', ?, ?, 'UTC', 0, ?, ?, 'alice@example.com', ?, ?, ?) RETURNING id""",
        (uid, utc_text(start), utc_text(end), state, room, organizer, utc_text(T0), utc_text(T0)),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
