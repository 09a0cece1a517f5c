"""Standalone phonebook server for tests and benchmarks: `python -m pbxsync.plugin.ldap --db FILE`.

Prints `listening HOST PORT` (and `ldaps HOST PORT`) once ready; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

from pbxsync.plugin.ldap.server import LdapServer
from pbxsync.sync.config import Config, LdapConfig, load_config
from pbxsync.sync.listen import ListenAddress


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if args.config else Config()
    changes: dict[str, object] = {}
    for key in ("listen", "base_dn", "ldaps_listen", "tls_cert", "tls_key"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if args.size_limit is not None:
        changes["size_limit"] = args.size_limit
    if args.max_connections is not None:
        changes["max_connections"] = args.max_connections
    ldap: LdapConfig = dataclasses.replace(config.ldap, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(config, ldap=ldap)


async def _serve(config: Config, db: str) -> None:
    server = LdapServer(config, db)
    await server.start()
    for host, port in server.addresses:
        print(f"listening {host} {port}", flush=True)
    for host, port in server.ldaps_addresses:
        print(f"ldaps {host} {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def _listen_address(text: str) -> ListenAddress:
    try:
        return ListenAddress.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pbxsync.plugin.ldap", description=__doc__)
    parser.add_argument("--db", required=True, help="the pbxsync SQLite store")
    parser.add_argument("--config", help="a pbxsync TOML config (default: built-in defaults)")
    parser.add_argument("--listen", type=_listen_address, metavar="HOST:PORT")
    parser.add_argument("--ldaps-listen", dest="ldaps_listen", type=_listen_address, metavar="HOST:PORT")
    parser.add_argument("--base-dn", dest="base_dn")
    parser.add_argument("--tls-cert", dest="tls_cert")
    parser.add_argument("--tls-key", dest="tls_key")
    parser.add_argument("--size-limit", dest="size_limit", type=int)
    parser.add_argument("--max-connections", dest="max_connections", type=int)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve(_config(args), args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
