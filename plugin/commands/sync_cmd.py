"""`pbxsync sync [--user EXT]`: one sync pass now ("Sync now"), then the bookings are reconciled."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.booking.reconcile import ReconcileSummary
from pbxsync.plugin.commands.common import add_json_flag, config_from, print_json, store_from, utc_now
from pbxsync.plugin.notices.step import NoticeStep
from pbxsync.plugin.writeback.step import write_back
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.engine import FolderResult, SyncEngine, UserSummary
from pbxsync.sync.errors import UserError
from pbxsync.sync.sources.factory import make_source
from pbxsync.sync.sources.mail import mail_sender_for
from pbxsync.sync.sources.writer import writer_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync", help="sync every user's Exchange contacts and calendar now",
                       description="Run one sync pass now and print a per-user summary. Exits 1 if any user "
                       "failed. Other users are never affected by one user's failure. Items pbxsync cannot read "
                       "(see `pbxsync users`) are skipped with a warning and do not fail the sync.")
    p.add_argument("--user", metavar="EXT", action="append",
                   help="only this extension (repeatable)")
    p.add_argument("--local", action="store_true",
                   help="run the pass in this process even when a daemon is running "
                   "(by default a running daemon does it, so AUTOCALL is re-armed at once)")
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
    text = f"+{result.added} ~{result.updated} -{result.deleted}"
    return f"{text} ({result.skipped} skipped)" if result.skipped else text


def summary_line(user: UserSummary) -> str:
    state = "ok" if user.ok else "FAILED"
    return (f"{user.extension:<8} {user.mailbox:<32} contacts {_folder_text(user.contacts):<14} "
            f"calendar {_folder_text(user.calendar):<14} {state}")


def summary_json(user: UserSummary) -> dict[str, Any]:
    def folder(r: FolderResult | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"added": r.added, "updated": r.updated, "deleted": r.deleted, "skipped": r.skipped,
                "error": r.error, "error_kind": r.error_kind}

    return {"extension": user.extension, "mailbox": user.mailbox, "ok": user.ok,
            "contacts": folder(user.contacts), "calendar": folder(user.calendar)}


def bookings_json(b: ReconcileSummary) -> dict[str, int]:
    return {"created": b.created, "updated": b.updated, "cancelled": b.cancelled, "rejected": b.rejected}


def _remote_folder(doc: dict[str, Any] | None) -> FolderResult | None:
    if doc is None:
        return None
    return FolderResult(int(doc.get("added", 0)), int(doc.get("updated", 0)), int(doc.get("deleted", 0)),
                        doc.get("error"), doc.get("error_kind"), skipped=int(doc.get("skipped", 0)))


def _sync_in_daemon(config: Config, users: list[UserConfig]) -> list[UserSummary] | None:
    """"Sync now" in the running daemon; None when no daemon listens on [control] socket/listen."""
    from pbxsync.plugin.daemon.control_client import trigger_sync_in_daemon

    targets: list[str | None] = [u.extension for u in users] if len(users) < len(config.users) else [None]
    results: list[UserSummary] = []
    for extension in targets:
        doc = trigger_sync_in_daemon(config, extension)
        if doc is None:
            return None
        for u in doc.get("users", []):
            results.append(UserSummary(str(u.get("extension", "")), str(u.get("mailbox", "")),
                                       _remote_folder(u.get("contacts")), _remote_folder(u.get("calendar"))))
    return results


async def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    users = chosen_users(config, args.user)
    if not args.local:
        remote = await asyncio.to_thread(_sync_in_daemon, config, users)
        if remote is not None:
            return _report(sorted(remote, key=lambda s: s.extension), None, args.json, "the running daemon")
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
        bookings = await update_bookings(store, config, utc_now(), groups=source)
        if config.meetings.notify_organizer:
            await NoticeStep(config).run(store, utc_now(), mail_sender_for(source))
        writer = writer_for(source) if config.meetings.write_back else None
        if writer is not None:  # the "Join by phone" blocks, as the daemon writes them after a pass
            await write_back(store, config, writer, utc_now())
    finally:
        await source.close()
        await store.close()
    results.sort(key=lambda s: s.extension)
    return _report(results, bookings, args.json, None)


def _report(results: list[UserSummary], bookings: ReconcileSummary | None, as_json: bool, where: str | None) -> int:
    failed = [r for r in results if not r.ok]
    if as_json:
        print_json({"ok": not failed, "ran_in": "daemon" if where else "cli",
                    "users": [summary_json(r) for r in results],
                    "bookings": bookings_json(bookings) if bookings else None})
    else:
        if where:
            for r in results:
                print(summary_line(r))
        line = f"{len(results) - len(failed)} of {len(results)} users synced"
        if where:
            line += f" by {where}; it updated the bookings and AUTOCALL"
        if bookings:
            line += (f"; bookings: {bookings.created} created, {bookings.updated} updated, "
                     f"{bookings.cancelled} cancelled, {bookings.rejected} rejected")
        print(line)
        for r in failed:
            print(f"pbxsync: sync failed for {r.extension} ({r.mailbox})", file=sys.stderr)
    for r in results:
        for name, folder in (("contacts", r.contacts), ("calendar", r.calendar)):
            if folder is not None and folder.skipped:
                print(f"pbxsync: warning: {folder.skipped} {name} item(s) of {r.extension} ({r.mailbox}) could "
                      "not be read and were skipped; `pbxsync users` shows why", file=sys.stderr)
    return 1 if failed else 0
