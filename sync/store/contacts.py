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
from pbxsync.sync.store.db import Store


@dataclass(frozen=True)
class StoredContact:
    id: int
    mailbox: str
    contact: Contact
    # Per number of `contact.phones`: its stored (national, international) display forms, None while the
    # portal has not formatted it yet (migration 0014); () when not read.
    display: tuple[tuple[str, str] | None, ...] = ()


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


# Each contact with its numbers in one row (a JSON array, in the order they were stored): one query, one
# trip to the database thread. The numbers are gathered only for the rows kept: the inner query selects,
# sorts and limits, the outer one adds the numbers (and keeps the order).
_ORDER = "c.display_name COLLATE NOCASE, c.id"
_COLUMNS = """c.id, c.mailbox, c.item_id, c.change_key, c.display_name, c.given_name, c.surname,
              c.company, c.title, c.emails, c.folder,
              (SELECT json_group_array(json_array(p.kind, p.raw, p.e164, p.digits, p.national, p.international))
               FROM (SELECT * FROM contact_phones WHERE contact_id = c.id ORDER BY rowid) AS p)"""


async def hydrate_rows(store: Store, where: str, args: Sequence[object],
                       limit: int | None = None) -> list[StoredContact]:
    """The contacts `SELECT ... FROM contacts c <where>` finds, by name, at most `limit` of them."""
    limited = "" if limit is None else f" LIMIT {int(limit)}"
    async with store.conn.execute(
        f"SELECT {_COLUMNS} FROM (SELECT * FROM contacts c {where} ORDER BY {_ORDER}{limited}) AS c ORDER BY {_ORDER}",
        args,
    ) as cur:
        rows = await cur.fetchall()
    return _hydrate(rows)


def _hydrate(rows: Iterable[Sequence[Any]]) -> list[StoredContact]:
    out = []
    for cid, mailbox, item_id, ck, name, given, sur, company, title, emails, folder, numbers in rows:
        phones, display = [], []
        for kind, raw, e164, digits, national, international in json.loads(numbers or "[]"):
            phones.append(PhoneNumber(PhoneKind(kind), raw, e164, digits))
            display.append(None if national is None else (str(national), str(international or "")))
        contact = Contact(str(item_id), str(ck), str(name), str(given), str(sur), str(company), str(title),
                          tuple(json.loads(str(emails))), tuple(phones), str(folder))
        out.append(StoredContact(int(cid), str(mailbox), contact, tuple(display)))
    return out


async def list_contacts(store: Store, mailbox: str | None = None) -> list[StoredContact]:
    where, args = ("WHERE c.mailbox = ?", (mailbox,)) if mailbox else ("", ())
    return await hydrate_rows(store, where, args)


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
    return await hydrate_rows(store, f"WHERE {' OR '.join(conditions)}", args, limit)


async def contact_by_id(store: Store, contact_id: int) -> StoredContact | None:
    found = await hydrate_rows(store, "WHERE c.id = ?", (contact_id,))
    return found[0] if found else None


async def contact_counts(store: Store) -> dict[str, int]:
    async with store.conn.execute("SELECT mailbox, count(*) FROM contacts GROUP BY mailbox") as cur:
        return {str(m): int(n) async for m, n in cur}
