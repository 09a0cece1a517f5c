"""`pbxsync contacts [search TEXT]` and `pbxsync users`: what is synced, and how each user's sync is doing."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from pbxsync.plugin.commands.common import add_json_flag, config_from, print_json, print_table, store_from, utc_now
from pbxsync.plugin.directory import load_directory
from pbxsync.plugin.writeback.store import mailbox_write_backs, write_back_status
from pbxsync.sync.model import Contact, Folder, utc_text
from pbxsync.sync.phones import digits_of, to_e164
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import contacts as contact_store
from pbxsync.sync.store.folders import FolderState, all_folder_states
from pbxsync.sync.store.skipped import SkipSummary, skip_summaries


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contacts = sub.add_parser("contacts", help="list synced contacts, or search them",
                              description="List the synced Exchange contacts. "
                              "`pbxsync contacts search TEXT` matches name, company, e-mail or any number form.")
    add_json_flag(contacts)
    contacts.add_argument("--user", metavar="EXT", help="only this user's contacts")
    contacts.set_defaults(handler=list_contacts_cmd)
    actions = contacts.add_subparsers(dest="contacts_action", metavar="ACTION")
    search = actions.add_parser("search", help="search by name, company, e-mail or number",
                                description="Search synced contacts by name, company, e-mail or phone number in "
                                "any format (+49 30 1234-4711, 03012344711, 4711).")
    search.add_argument("text", help="what to look for")
    add_json_flag(search)
    search.set_defaults(handler=search_contacts_cmd)

    users = sub.add_parser("users", help="the PBX users and the state of their sync",
                           description="Each configured PBX user: mailbox, room, whether their addresses match "
                           "meetings (conflicts, resolved internal X.500 aliases), last sync success and last error "
                           "per folder, synced counts, and the items pbxsync skipped because it could not read "
                           "them (how many, and the latest reasons).")
    add_json_flag(users)
    users.set_defaults(handler=users_cmd)


def contact_json(mailbox: str, c: Contact) -> dict[str, Any]:
    return {
        "mailbox": mailbox, "item_id": c.item_id, "display_name": c.display_name, "given_name": c.given_name,
        "surname": c.surname, "company": c.company, "title": c.title, "emails": list(c.emails),
        "phones": [{"kind": p.kind.value, "raw": p.raw, "e164": p.e164} for p in c.phones],
        "folder": c.folder,
    }


def _print_contacts(rows: list[contact_store.StoredContact], as_json: bool) -> None:
    if as_json:
        print_json([contact_json(r.mailbox, r.contact) for r in rows])
        return
    print_table(
        ("NAME", "COMPANY", "NUMBERS", "MAILBOX", "FOLDER"),
        [(r.contact.display_name, r.contact.company, ", ".join(p.raw for p in r.contact.phones), r.mailbox,
          r.contact.folder) for r in rows],
    )
    print(f"{len(rows)} contact(s)")


async def list_contacts_cmd(args: argparse.Namespace) -> int:
    config = config_from(args)
    mailbox = None
    if args.user:
        from pbxsync.plugin.commands.sync_cmd import chosen_users

        mailbox = chosen_users(config, [args.user])[0].mailbox.lower()
    store = await store_from(config)
    try:
        rows = await contact_store.list_contacts(store, mailbox)
    finally:
        await store.close()
    _print_contacts(rows, args.json)
    return 0


async def search_contacts_cmd(args: argparse.Namespace) -> int:
    config = config_from(args)
    text = args.text.strip()
    store = await store_from(config)
    try:
        rows = await contact_store.search_contacts(store, text, to_e164(text, config.sync.default_region),
                                                   digits_of(text))
    finally:
        await store.close()
    _print_contacts(rows, args.json)
    return 0


def _state_json(state: FolderState | None, skips: SkipSummary | None) -> dict[str, Any] | None:
    if state is None:
        return None

    def when(moment: datetime | None) -> str | None:
        return utc_text(moment) if moment else None

    skips = skips or SkipSummary()
    return {"last_attempt": when(state.last_attempt), "last_success": when(state.last_success),
            "last_error": state.last_error, "error_kind": state.error_kind, "skipped": skips.count,
            "skipped_latest": [{"folder": s.location, "item_id": s.item_id, "reason": s.reason,
                                "seen_at": utc_text(s.seen_at)} for s in skips.latest]}


async def users_cmd(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = await store_from(config)
    try:
        states = {(s.mailbox, s.folder): s for s in await all_folder_states(store)}
        skips = await skip_summaries(store)
        contact_counts = await contact_store.contact_counts(store)
        occurrence_counts = await calendar_store.occurrence_counts(store)
        directory = await load_directory(store, config)
        async with store.conn.execute(
            "SELECT organizer_extension, count(*) FROM bookings WHERE state = 'scheduled' AND end_utc > ? "
            "GROUP BY organizer_extension", (utc_text(utc_now()),)
        ) as cur:
            organized = {str(ext): int(n) async for ext, n in cur}
        write_backs = await mailbox_write_backs(store)
    finally:
        await store.close()
    out: list[dict[str, Any]] = []
    for u in config.users:
        mailbox = u.mailbox.lower()
        entry = directory.by_extension(u.extension)
        matched = list(entry.emails) if entry else []
        aliases = sorted(a for a, smtp in directory.resolved.items() if smtp and smtp in matched)
        problems = [c for c in directory.conflicts if f"extension {u.extension} " in c]
        out.append({

            "extension": u.extension, "name": u.name, "emails": [e.lower() for e in u.email], "room": u.room,
            "sync_contacts": u.sync_contacts, "sync_calendar": u.sync_calendar,
            "contacts": _state_json(states.get((mailbox, Folder.CONTACTS)), skips.get((mailbox, Folder.CONTACTS))),
            "calendar": _state_json(states.get((mailbox, Folder.CALENDAR)), skips.get((mailbox, Folder.CALENDAR))),
            "contact_count": contact_counts.get(mailbox, 0), "occurrence_count": occurrence_counts.get(mailbox, 0),
            "match": {"status": "conflict" if problems else "ok", "addresses": matched,
                      "internal_aliases": aliases, "problems": problems},
            "upcoming_bookings_organized": organized.get(u.extension, 0),
            "write_back": write_backs.get(mailbox),
        })
    if args.json:
        print_json(out)
        return 0

    def status(folder: dict[str, Any] | None, enabled: bool) -> str:
        if not enabled:
            return "off"
        if folder is None or not folder["last_attempt"]:
            return "never synced"
        if folder["last_error"]:
            return f"ERROR {folder['error_kind']}: {folder['last_error']}"
        skipped = f" · {folder['skipped']} skipped" if folder["skipped"] else ""
        return f"ok {folder['last_success']}{skipped}"

    write_back = config.meetings.write_back  # the WRITE-BACK column only when it is on
    print_table(("EXT", "NAME", "MAILBOX", "ROOM", "MATCH", "CONTACTS", "CALENDAR") + (("WRITE-BACK",) * write_back),
                [(u["extension"], u["name"], u["emails"][0], u["room"],
                  u["match"]["status"] if not u["match"]["problems"] else "; ".join(u["match"]["problems"]),
                  f"{u['contact_count']} · {status(u['contacts'], u['sync_contacts'])}",
                  f"{u['occurrence_count']} · {status(u['calendar'], u['sync_calendar'])}")
                 + ((write_back_status(u["write_back"]),) * write_back) for u in out],
                max_width=60)
    skipped_rows = [(u["extension"], name, s["folder"] or "-", s["item_id"][:24], s["reason"])
                    for u in out for name in ("contacts", "calendar") if u[name]
                    for s in u[name]["skipped_latest"]]
    if skipped_rows:
        print("\nSkipped items (pbxsync could not read them; the newest per folder):")
        print_table(("EXT", "FOLDER", "IN", "ITEM ID", "REASON"), skipped_rows, max_width=60)
    return 0
