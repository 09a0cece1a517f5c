"""`pbxsync` command line: global options, subcommand dispatch, and one-line errors.

A `UserError` prints `pbxsync: <message>` and exits 2; any other `PbxsyncError` prints one line and
exits 1. Tracebacks are shown only with `--debug`, so an operator's typo never produces a wall of text.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from pbxsync.sync.errors import PbxsyncError, UserError

# Modules under plugin.commands, in --help order. Each defines register(subparsers).
COMMAND_MODULES = (
    "run",
    "check",
    "status",
    "sync_cmd",
    "listing",
    "conferences",
    "dialplan",
    "demo",
    "simulate",
    "passwd",
    "phonebook",
)

Handler = Callable[[argparse.Namespace], Any]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbxsync",
        description="Exchange contacts and calendars for Asterisk: LDAP phonebook, caller-ID names, "
        "conference bookings and AUTOCALL.",
    )
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="configuration file (default: $PBXSYNC_CONFIG or /etc/pbxsync/pbxsync.toml)")
    parser.add_argument("--version", action="version", version=f"pbxsync {version('pbxsync')}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--log-format", choices=("text", "json"), help="override [log] format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"pbxsync.plugin.commands.{name}").register(sub)
    return parser


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    result = handler(args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = run_handler(args.handler, args)
    except BrokenPipeError:  # `pbxsync contacts | head`: the reader left; not an error worth a traceback
        sys.stderr.close()
        code = 0
    except KeyboardInterrupt:
        print("pbxsync: interrupted", file=sys.stderr)
        code = 130
    except UserError as exc:
        if args.debug:
            logging.exception("user error")
        print(f"pbxsync: {exc}", file=sys.stderr)
        code = 2
    except PbxsyncError as exc:
        if args.debug:
            logging.exception("error")
        first, *_ = str(exc).splitlines() or [type(exc).__name__]
        print(f"pbxsync: error: {first}", file=sys.stderr)
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
