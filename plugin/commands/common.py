"""Helpers every subcommand shares: loading the config, opening the store, printing tables and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pbxsync.sync.config import Config, load_config
from pbxsync.sync.store.db import Store, open_store


def config_from(args: argparse.Namespace) -> Config:
    """Load the config and set up logging for a one-shot command: warnings only, unless --debug."""
    from pbxsync.plugin.logs import setup_logging

    config = load_config(getattr(args, "config", None))
    debug = bool(getattr(args, "debug", False))
    setup_logging("warning", getattr(args, "log_format", None) or config.log.format, debug=debug, config=config)
    return config


async def store_from(config: Config) -> Store:
    return await open_store(config.database, config.database_group)


def utc_now() -> datetime:
    """The CLI's clock. The daemon and the engines take `now` as an argument instead."""
    return datetime.now(UTC)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _clean(cell: object) -> str:
    # Exchange data is hostile: no control characters may reach the operator's terminal.
    text = "" if cell is None else str(cell)
    return "".join(ch if ch.isprintable() else " " for ch in text)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 40) -> None:
    cells = [[_clean(c)[:max_width] for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
