"""`pbxsync demo`: run the real agent against the built-in Exchange and Asterisk simulators."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pbxsync.plugin.demo import run_demo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="see pbxsync work end to end against simulated Exchange and Asterisk",
                       description="Starts the Exchange and Asterisk simulators with the examples/ demo data, "
                       "runs the agent against them (a PBX AUTOCALL meeting starts within seconds) and prints "
                       "a timeline. Needs no config. Exit code 0 when every step worked.")
    p.add_argument("--data", type=Path, metavar="FILE", help="mailbox data file (default: examples/demo-mailboxes.json "
                   "or the built-in demo data)")
    p.add_argument("--phones", type=Path, metavar="FILE", help="scripted phones (default: examples/demo-phones.json)")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (database, config, log)")
    p.add_argument("--serve", action="store_true", help="after the last step, keep the agent and its web portal "
                   "running (the URL and a demo login are printed) until Ctrl-C")
    p.set_defaults(handler=demo)


async def demo(args: argparse.Namespace) -> int:
    return await run_demo(data_file=args.data, phones_file=args.phones, keep=args.keep,
                          serve=_until_interrupted if args.serve else None)


async def _until_interrupted(url: str) -> None:
    print(f"\nThe agent and the portal keep running: open {url} (Ctrl-C stops them)", flush=True)
    await asyncio.Event().wait()  # Ctrl-C cancels this; the demo then stops the agent as usual
