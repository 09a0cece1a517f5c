"""`pbxsync contacts [search TEXT]` and `pbxsync users`: what is synced, and how each user's sync is doing."""

from __future__ import annotations

import argparse
from typing import Any

from pbxsync.plugin.commands.common import add_json_flag, config_from, print_json, print_table, store_from, utc_now
from pbxsync.plugin.users_report import users_report
from pbxsync.plugin.writeback.store import write_back_status
from pbxsync.sync.model import Contact
from pbxsync.sync.phones import digits_of, to_e164
from pbxsync.sync.store import contacts as contact_store


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


async def users_cmd(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = await store_from(config)
    try:
        out = await users_report(store, config, utc_now())
    finally:
        await store.close()
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
