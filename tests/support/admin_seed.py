"""Data for the admin pages' tests: folder states, bookings with their events and AUTOCALL attempts.

Written straight into the tables (the way the sync engine, the planner and AUTOCALL leave them), around
a fixed `now`, for the users of tests/support/web_portal.py: 101 Ada (synced, fine), 102 Bob (contacts
fail: auth), 103 Eve (never synced). Outcomes: two days ago 2 answered, 1 busy, 1 no answer; yesterday
1 answered, 1 congestion (counted as failed), 1 failed; one call still ringing today (not counted).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOSTILE_SUBJECT = "<script>alert('subject')</script> & <b>bold</b>"
# (day offset, outcome) of each attempt, per booking
EXPECTED_TABLE = {  # day -> (answered, busy, no answer, failed)
    "2026-12-01": (2, 1, 1, 0),
    "2026-12-02": (1, 0, 0, 2),
    "2026-12-03": (0, 0, 0, 0),
}


def t(delta: timedelta) -> str:
    return utc_text(NOW + delta)


async def _booking(store: Store, uid: str, subject: str, start: datetime, state: str, room: str | None,
                   reason: str | None, autocall: bool = True) -> int:
    cur = await store.conn.execute(
        "INSERT INTO bookings (uid, recurrence_key, subject, location, start_utc, end_utc, timezone, autocall, "
        "state, reason, room, organizer_email, organizer_extension, created_at, updated_at) "
        "VALUES (?, '', ?, 'PBX AUTOCALL', ?, ?, 'Europe/Berlin', ?, ?, ?, ?, 'ada@example.com', '101', ?, ?)",
        (uid, subject, utc_text(start), utc_text(start + timedelta(minutes=30)), int(autocall), state, reason, room,
         utc_text(start - timedelta(days=3)), utc_text(start - timedelta(days=1))))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def _participants(store: Store, booking_id: int) -> dict[str, int]:
    ids = {}
    for i, (ext, name, role) in enumerate((("101", "Ada Admin", "host"), ("102", "Bob Builder", "required"),
                                           ("103", "Eve Example", "required"))):
        cur = await store.conn.execute(
            "INSERT INTO booking_participants (booking_id, extension, email, name, role, response, invited, "
            "copy_state, call, position) VALUES (?, ?, ?, ?, ?, ?, 1, 'present', 1, ?)",
            (booking_id, ext, f"{name.split()[0].lower()}@example.com", name, role,
             "organizer" if role == "host" else "accept", i))
        assert cur.lastrowid is not None
        ids[ext] = cur.lastrowid
    return ids


async def _attempt(store: Store, booking_id: int, participant: int, ext: str, n: int, outcome: str,
                   start: datetime, joined: bool = False) -> None:
    finished = None if outcome == "pending" else utc_text(start + timedelta(seconds=20 * n))
    await store.conn.execute(
        "INSERT INTO autocall_attempts (booking_id, participant_id, extension, attempt, channel_id, outcome, "
        "reason, detail, created_at, finished_at, joined_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
        (booking_id, participant, ext, n, f"pbxsync-{booking_id}-{participant}-{n}", outcome,
         "Reason 8" if outcome == "congestion" else None, utc_text(start + timedelta(seconds=20 * (n - 1))),
         finished, finished if joined else None))


async def seed_admin_data(store: Store) -> None:
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT INTO folder_sync (mailbox, folder, last_attempt, last_success, last_error, error_kind) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [("ada@example.com", "contacts", t(-timedelta(minutes=5)), t(-timedelta(minutes=5)), None, None),
             ("ada@example.com", "calendar", t(-timedelta(minutes=3)), t(-timedelta(minutes=3)), None, None),
             ("bob@example.com", "contacts", t(-timedelta(minutes=1)), t(-timedelta(hours=2)),
              "401 Unauthorized <html>", "auth"),
             ("bob@example.com", "calendar", t(-timedelta(minutes=1)), t(-timedelta(minutes=1)), None, None)])
    day1 = NOW.replace(hour=9) - timedelta(days=2)
    first = await _booking(store, "uid-standup", "Stand-up", day1, "scheduled", "800", None)
    people = await _participants(store, first)
    await _attempt(store, first, people["101"], "101", 1, "answered", day1, joined=True)
    await _attempt(store, first, people["102"], "102", 1, "busy", day1)
    await _attempt(store, first, people["102"], "102", 2, "answered", day1, joined=True)
    await _attempt(store, first, people["103"], "103", 1, "no_answer", day1)
    day2 = NOW.replace(hour=9) - timedelta(days=1)
    second = await _booking(store, "uid-review", HOSTILE_SUBJECT, day2, "scheduled", "801", None)
    people = await _participants(store, second)
    await _attempt(store, second, people["101"], "101", 1, "answered", day2, joined=True)
    await _attempt(store, second, people["102"], "102", 1, "congestion", day2)
    await _attempt(store, second, people["103"], "103", 1, "failed", day2)
    today = NOW - timedelta(minutes=1)
    third = await _booking(store, "uid-now", "Running now", today, "scheduled", "800", None)
    people = await _participants(store, third)
    await _attempt(store, third, people["102"], "102", 1, "pending", today)
    await _booking(store, "uid-vendor", "Vendor pitch", NOW + timedelta(days=1), "rejected", None,
                   "organizer sales@vendor.example is not a PBX user")
    await store.conn.executemany(
        "INSERT INTO booking_events (booking_id, at, kind, detail) VALUES (?, ?, ?, ?)",
        [(first, utc_text(day1 - timedelta(days=3)), "create", "booked in room 801"),
         (first, utc_text(day1 - timedelta(days=1)), "update", "room 801 -> 800"),
         (second, utc_text(day2 - timedelta(days=2)), "create", "booked in room 801")])
    await store.conn.commit()
