"""The show-as migration: rows stored before it are read again at the next pass (issue 17)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pbxsync.sync.store.db import migrations, open_store


async def test_rows_of_an_older_schema_get_show_as_busy_and_are_fetched_again(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    (show_as,) = [m for m in migrations() if m.name.endswith("_show_as.sql")]
    conn = sqlite3.connect(path)
    for mig in migrations()[:show_as.version - 1]:
        conn.executescript(f"BEGIN;\n{mig.sql}\nPRAGMA user_version = {mig.version};\nCOMMIT;")
    conn.execute("""INSERT INTO occurrences (mailbox, item_id, change_key, uid, occurrence_key, start_utc, end_utc,
                        timezone, subject, location, organizer_email, organizer_name, attendees, is_cancelled,
                        is_all_day, updated_at)
                    VALUES ('a@example.com', 'i1', 'ck1', 'u1', 'k', '2026-11-27T09:00:00+00:00',
                            '2026-11-27T10:00:00+00:00', 'UTC', 's', '', '', '', '[]', 0, 0, '')""")
    conn.execute("""INSERT INTO folder_sync (mailbox, folder, window_start, window_end)
                    VALUES ('a@example.com', 'calendar', '2026-11-26T00:00:00+00:00', '2026-12-28T00:00:00+00:00')""")
    conn.commit()
    conn.close()
    store = await open_store(path)
    try:
        async with store.conn.execute("SELECT show_as, change_key FROM occurrences") as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [("busy", "")]
        async with store.conn.execute("SELECT window_start FROM folder_sync") as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [(None,)]
    finally:
        await store.close()
