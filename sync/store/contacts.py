"""Contacts in the store: applying a sync plan, listing and searching."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import aiosqlite

from pbxsync.sync.model import Contact, PhoneKind, PhoneNumber, utc_text
from pbxsync.sync.plan import ContactPlan
from pbxsync.sync.store.db import Store, in_batches


@dataclass(frozen=True)
class StoredContact:
    id: int
    mailbox: str
    contact: Contact


class ContactVersions(NamedTuple):
    """What the contacts planner compares, per stored item id."""

    change_keys: dict[str, str]
    folders: dict[str, str]  # the folder path each contact is stored with


async def contact_versions(store: Store, mailbox: str) -> ContactVersions:
    versions = ContactVersions({}, {})
    async with store.conn.execute("SELECT item_id, change_key, folder FROM contacts WHERE mailbox = ?",
                                  (mailbox,)) as cur:
        async for item_id, change_key, folder in cur:
            versions.change_keys[str(item_id)], versions.folders[str(item_id)] = str(change_key), str(folder)
    return versions


async def _write_phones(conn: aiosqlite.Connection, contact_id: int, phones: Iterable[PhoneNumber]) -> None:
    await conn.execute("DELETE FROM contact_phones WHERE contact_id = ?", (contact_id,))
    await conn.executemany(
        "INSERT INTO contact_phones (contact_id, kind, raw, e164, digits) VALUES (?, ?, ?, ?, ?)",
        [(contact_id, p.kind.value, p.raw, p.e164, p.digits) for p in phones],
    )


async def apply_contact_plan(conn: aiosqlite.Connection, mailbox: str, plan: ContactPlan, now: datetime) -> None:
    """Write a plan; call inside `Store.transaction()`."""
    stamp = utc_text(now)
    for c in (*plan.inserts, *plan.updates):
        async with conn.execute(
            """INSERT INTO contacts (mailbox, item_id, change_key, display_name, given_name, surname,
                                     company, title, emails, folder, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (mailbox, item_id) DO UPDATE SET
                   change_key = excluded.change_key, display_name = excluded.display_name,
                   given_name = excluded.given_name, surname = excluded.surname, company = excluded.company,
                   title = excluded.title, emails = excluded.emails, folder = excluded.folder,
                   updated_at = excluded.updated_at
               RETURNING id""",
            (mailbox, c.item_id, c.change_key, c.display_name, c.given_name, c.surname, c.company, c.title,
             json.dumps(list(c.emails), ensure_ascii=False), c.folder, stamp),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        await _write_phones(conn, int(row[0]), c.phones)
    await conn.executemany("DELETE FROM contacts WHERE mailbox = ? AND item_id = ?",
                           [(mailbox, i) for i in plan.deletes])


_SELECT = """SELECT c.id, c.mailbox, c.item_id, c.change_key, c.display_name, c.given_name, c.surname,
                    c.company, c.title, c.emails, c.folder
             FROM contacts c"""


async def _hydrate(store: Store, fetched: Iterable[Sequence[Any]]) -> list[StoredContact]:
    rows = list(fetched)
    ids = [int(r[0]) for r in rows]
    phones: dict[int, list[PhoneNumber]] = {i: [] for i in ids}
    for chunk, marks in in_batches(ids):
        async with store.conn.execute(
            f"SELECT contact_id, kind, raw, e164, digits FROM contact_phones WHERE contact_id IN ({marks}) "
            "ORDER BY rowid", chunk
        ) as cur:
            async for cid, kind, raw, e164, digits in cur:
                phones[int(cid)].append(PhoneNumber(PhoneKind(kind), raw, e164, digits))
    out = []
    for r in rows:
        cid, mailbox, item_id, ck, name, given, sur, company, title, emails, folder = r
        contact = Contact(str(item_id), str(ck), str(name), str(given), str(sur), str(company), str(title),
                          tuple(json.loads(str(emails))), tuple(phones[int(cid)]), str(folder))
        out.append(StoredContact(int(cid), str(mailbox), contact))
    return out


async def list_contacts(store: Store, mailbox: str | None = None) -> list[StoredContact]:
    where, args = ("WHERE c.mailbox = ?", (mailbox,)) if mailbox else ("", ())
    async with store.conn.execute(f"{_SELECT} {where} ORDER BY c.display_name COLLATE NOCASE, c.id", args) as cur:
        rows = await cur.fetchall()
    return await _hydrate(store, rows)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_contacts(store: Store, text: str, e164: str | None, digits: str,
                          limit: int = 200) -> list[StoredContact]:
    """Name, company or any number form. `e164`/`digits` are the query normalised like stored numbers."""
    conditions = ["c.display_name LIKE ? ESCAPE '\\'", "c.company LIKE ? ESCAPE '\\'",
                  "c.given_name LIKE ? ESCAPE '\\'", "c.surname LIKE ? ESCAPE '\\'", "c.emails LIKE ? ESCAPE '\\'"]
    args: list[object] = [_like(text)] * len(conditions)
    if e164:
        conditions.append("c.id IN (SELECT contact_id FROM contact_phones WHERE e164 = ?)")
        args.append(e164)
    if len(digits) >= 3:
        conditions.append("c.id IN (SELECT contact_id FROM contact_phones WHERE digits LIKE ? OR e164 LIKE ?)")
        args += [_like(digits), _like(digits)]
    async with store.conn.execute(
        f"{_SELECT} WHERE {' OR '.join(conditions)} ORDER BY c.display_name COLLATE NOCASE, c.id LIMIT ?",
        (*args, limit),
    ) as cur:
        rows = await cur.fetchall()
    return await _hydrate(store, rows)


async def hydrate_rows(store: Store, tail: str, args: Sequence[object]) -> list[StoredContact]:
    """The contacts `SELECT ... FROM contacts c <tail>` finds (`tail`: WHERE, ORDER BY, LIMIT)."""
    async with store.conn.execute(f"{_SELECT} {tail}", args) as cur:
        rows = await cur.fetchall()
    return await _hydrate(store, rows)


async def contact_by_id(store: Store, contact_id: int) -> StoredContact | None:
    found = await hydrate_rows(store, "WHERE c.id = ?", (contact_id,))
    return found[0] if found else None


async def contact_counts(store: Store) -> dict[str, int]:
    async with store.conn.execute("SELECT mailbox, count(*) FROM contacts GROUP BY mailbox") as cur:
        return {str(m): int(n) async for m, n in cur}
