"""`pbxsync run`: the agent itself, in the foreground (systemd runs it as a service)."""

from __future__ import annotations

import argparse

from pbxsync.plugin.commands.common import config_from
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.memory import return_large_frees_to_os
from pbxsync.plugin.logs import setup_from_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the agent: sync, bookings, AUTOCALL, LDAP, FastAGI, presence, web "
                       "portal, XML phonebooks",
                       description="Run every part of pbxsync in one process until SIGTERM. SIGHUP reloads the "
                       "config (an invalid one is logged and ignored). `pbxsync status` shows its health, "
                       "`pbxsync sync` triggers a pass in it.")
    p.add_argument("--stop-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="on SIGTERM, how long in-flight work may take to finish (default 10)")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    setup_from_config(config, debug=args.debug, log_format=args.log_format)
    return_large_frees_to_os()
    daemon = Daemon(config, debug=args.debug, stop_timeout=args.stop_timeout)
    return await daemon.run()
