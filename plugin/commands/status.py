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


def service_rows(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(service, state, "ok"/"FAIL", detail) per service of a /status document; the portal shows the same."""
    rows = []
    for svc in doc.get("services", []):
        detail = svc.get("detail") or ""
        if svc.get("restarts"):
            detail += f" (restarted {svc['restarts']}x, last error: {svc.get('last_error')})"
        rows.append((str(svc.get("name")), str(svc.get("state")), "ok" if svc.get("ok") else "FAIL", detail))
    return rows


def store_problem(doc: dict[str, Any]) -> str | None:
    store = doc.get("store")
    if isinstance(store, dict) and not store.get("ok", True):
        return (f"database {doc.get('database')} is DAMAGED: {store.get('integrity')}; "
                "restore it from a backup (docs/operations.md)")
    return None


def notification_lines(doc: dict[str, Any]) -> list[str]:
    """The change feed's health: which mode, how many subscriptions work, which folders are polled instead."""
    lines = []
    for svc in doc.get("services", []):
        feed = (svc.get("data") or {}).get("notifications")
        if not isinstance(feed, dict):
            continue
        age = feed.get("last_event_age_seconds")
        line = (f"notifications: {feed.get('mode')}, {feed.get('subscriptions_healthy')}/"
                f"{feed.get('subscriptions_total')} subscriptions healthy, last event "
                f"{'never' if age is None else f'{age:.0f} s ago'}, "
                f"{feed.get('resubscriptions', 0)} re-subscription(s)")
        lines.append(line + (f"; {feed['detail']}" if feed.get("detail") else ""))
        fallback = list(feed.get("fallback_folders") or [])
        if fallback:
            shown = ", ".join(fallback[:10]) + (f" and {len(fallback) - 10} more" if len(fallback) > 10 else "")
            lines.append(f"on timed polling ([sync] fallback_interval_minutes): {shown}")
    return lines


def print_status(doc: dict[str, Any]) -> None:
    print(f"pbxsync {doc.get('version')} pid {doc.get('pid')}, running since {doc.get('started')}, "
          f"config {doc.get('config')}: {'healthy' if doc.get('ok') else 'NOT HEALTHY'}")
    print_table(("SERVICE", "STATE", "HEALTH", "DETAIL"), service_rows(doc), max_width=100)
    problem = store_problem(doc)
    if problem:
        print(problem)
    for line in notification_lines(doc):
        print(line)


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
