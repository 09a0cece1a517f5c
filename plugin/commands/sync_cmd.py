"""`pbxsync sync [--user EXT]`: one sync pass now ("Sync now"), then the bookings are reconciled."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from plugin.after_sync import update_bookings
from plugin.booking.reconcile import ReconcileSummary
from plugin.commands.common import add_json_flag, config_from, print_json, store_from, utc_now
from sync.config import Config, UserConfig
from sync.engine import FolderResult, SyncEngine, UserSummary
from sync.errors import UserError
from sync.sources.factory import make_source


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync", help="sync every user's Exchange contacts and calendar now",
                       description="Run one sync pass now and print a per-user summary. Exits 1 if any user "
                       "failed. Other users are never affected by one user's failure.")
    p.add_argument("--user", metavar="EXT", action="append",
                   help="only this extension (repeatable)")
    add_json_flag(p)
    p.set_defaults(handler=run)


def chosen_users(config: Config, extensions: list[str] | None) -> list[UserConfig]:
    if not extensions:
        return list(config.users)
    unknown = [e for e in extensions if config.user_by_extension(e) is None]
    if unknown:
        raise UserError(f"no user with extension {', '.join(unknown)} in {config.path or 'the config'}")
    return [u for u in config.users if u.extension in extensions]


def _folder_text(result: FolderResult | None) -> str:
    if result is None:
        return "off"
    if result.error:
        return f"FAILED ({result.error_kind}): {result.error}"
    return f"+{result.added} ~{result.updated} -{result.deleted}"


def summary_line(user: UserSummary) -> str:
    state = "ok" if user.ok else "FAILED"
    return (f"{user.extension:<8} {user.mailbox:<32} contacts {_folder_text(user.contacts):<14} "
            f"calendar {_folder_text(user.calendar):<14} {state}")


def summary_json(user: UserSummary) -> dict[str, Any]:
    def folder(r: FolderResult | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"added": r.added, "updated": r.updated, "deleted": r.deleted, "error": r.error,
                "error_kind": r.error_kind}

    return {"extension": user.extension, "mailbox": user.mailbox, "ok": user.ok,
            "contacts": folder(user.contacts), "calendar": folder(user.calendar)}


def bookings_json(b: ReconcileSummary) -> dict[str, int]:
    return {"created": b.created, "updated": b.updated, "cancelled": b.cancelled, "rejected": b.rejected}


async def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    users = chosen_users(config, args.user)
    store = await store_from(config)
    source = make_source(config)
    try:
        engine = SyncEngine(store, source, config)
        now = utc_now()
        results: list[UserSummary] = []
        tasks = [asyncio.ensure_future(engine.sync_user(u, now)) for u in users]
        for done, future in enumerate(asyncio.as_completed(tasks), start=1):
            summary = await future
            results.append(summary)
            if not args.json:
                print(f"[{done}/{len(users)}] {summary_line(summary)}", flush=True)
        bookings = await update_bookings(store, config, utc_now())
    finally:
        await source.close()
        await store.close()
    results.sort(key=lambda s: s.extension)
    failed = [r for r in results if not r.ok]
    if args.json:
        print_json({"ok": not failed, "users": [summary_json(r) for r in results], "bookings": bookings_json(bookings)})
    else:
        print(f"{len(results) - len(failed)} of {len(results)} users synced; bookings: {bookings.created} created, "
              f"{bookings.updated} updated, {bookings.cancelled} cancelled, {bookings.rejected} rejected")
        for r in failed:
            print(f"pbxsync: sync failed for {r.extension} ({r.mailbox})", file=sys.stderr)
    return 1 if failed else 0
