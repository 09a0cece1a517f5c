"""`pbxsync status [--json]`: the running daemon's health, part by part."""

from __future__ import annotations

import argparse
from typing import Any

from pbxsync.plugin.commands.common import add_json_flag, config_from, print_json, print_table
from pbxsync.plugin.daemon.control_client import control_address, daemon_status
from pbxsync.sync.errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="health of the running daemon, part by part",
                       description="Ask the running daemon (at [control] socket or listen) for every part's health. "
                       "Exits 0 when all parts are healthy, 1 when one is not, 2 when no daemon is running.")
    add_json_flag(p)
    p.set_defaults(handler=status)


def not_running_message(where: str) -> str:
    return (f"no pbxsync daemon is running (nothing answers on {where}); "
            "start it with `systemctl start pbxsync` or `pbxsync run`")


def print_status(doc: dict[str, Any]) -> None:
    print(f"pbxsync {doc.get('version')} pid {doc.get('pid')}, running since {doc.get('started')}, "
          f"config {doc.get('config')}: {'healthy' if doc.get('ok') else 'NOT HEALTHY'}")
    rows = []
    for svc in doc.get("services", []):
        detail = svc.get("detail") or ""
        if svc.get("restarts"):
            detail += f" (restarted {svc['restarts']}x, last error: {svc.get('last_error')})"
        rows.append((svc.get("name"), svc.get("state"), "ok" if svc.get("ok") else "FAIL", detail))
    print_table(("SERVICE", "STATE", "HEALTH", "DETAIL"), rows, max_width=100)
    store = doc.get("store")
    if isinstance(store, dict) and not store.get("ok", True):
        print(f"database {doc.get('database')} is DAMAGED: {store.get('integrity')}; "
              "restore it from a backup (docs/operations.md)")
    for svc in doc.get("services", []):
        feed = (svc.get("data") or {}).get("notifications")
        if isinstance(feed, dict):
            print_notifications(feed)


def print_notifications(feed: dict[str, Any]) -> None:
    """The change feed's health: which mode, how many subscriptions work, which folders are polled instead."""
    age = feed.get("last_event_age_seconds")
    line = (f"notifications: {feed.get('mode')}, {feed.get('subscriptions_healthy')}/{feed.get('subscriptions_total')}"
            f" subscriptions healthy, last event {'never' if age is None else f'{age:.0f} s ago'}, "
            f"{feed.get('resubscriptions', 0)} re-subscription(s)")
    print(line + (f"; {feed['detail']}" if feed.get("detail") else ""))
    fallback = list(feed.get("fallback_folders") or [])
    if fallback:
        shown = ", ".join(fallback[:10]) + (f" and {len(fallback) - 10} more" if len(fallback) > 10 else "")
        print(f"on timed polling ([sync] fallback_interval_minutes): {shown}")


def status(args: argparse.Namespace) -> int:
    config = config_from(args)
    doc = daemon_status(config)
    if doc is None:
        raise UserError(not_running_message(control_address(config)))
    if args.json:
        print_json(doc)
    else:
        print_status(doc)
    return 0 if doc.get("ok") else 1
