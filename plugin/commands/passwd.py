"""`pbxsync passwd EXT`: set a user's portal password, or print a one-time sign-in link.

The password is read twice from the terminal (never echoed), or once from standard input with `--stdin`
(scripts). `--link` prints a link valid for 24 hours and usable once; it leads to "set your password".
Setting a password signs the user out of every browser.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from pbxsync.plugin.commands.common import config_from, store_from, utc_now
from pbxsync.plugin.web import accounts
from pbxsync.sync.config import Config
from pbxsync.sync.errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("passwd", help="set a user's web portal password, or print a one-time sign-in link",
                       description="Set the password EXT signs in to the web portal with (asked twice, not "
                       "echoed), or with --link print a one-time link (valid 24 hours) where the user sets it. "
                       "Either way the user is signed out of every browser.")
    p.add_argument("extension", metavar="EXT", help="the user's extension")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--stdin", action="store_true", help="read the password from the first line of standard input")
    how.add_argument("--link", action="store_true", help="print a one-time sign-in link instead")
    p.add_argument("--url", metavar="BASE", help="the portal's address for the link as users reach it "
                   "(default: from [web] tls_cert, allowed_hosts[0] and listen, e.g. https://pbx.example.com:8480)")
    p.set_defaults(handler=run)


def portal_url(config: Config) -> str:
    web = config.web
    host = web.allowed_hosts[0] if web.allowed_hosts else web.listen.host
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if web.tls_cert else "http"
    default_port = 443 if web.tls_cert else 80
    return f"{scheme}://{host}" + ("" if web.listen.port == default_port else f":{web.listen.port}")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Again: ")
    problem = accounts.password_problem(first, second)
    if problem:
        raise UserError(problem)
    return first


async def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    if config.user_by_extension(args.extension) is None:
        raise UserError(f"no user with extension {args.extension} in {config.path or 'the config'}")
    password = None if args.link else read_password(args.stdin)
    if password is not None:
        problem = accounts.password_problem(password, password)
        if problem:
            raise UserError(problem)
    store = await store_from(config)
    try:
        if password is None:
            token = await accounts.create_link(store, args.extension, utc_now())
            base = (args.url or portal_url(config)).rstrip("/")
            print(f"{base}/link/{token}")
            print(f"valid for {accounts.LINK_HOURS} hours, once; it lets {args.extension} set a password",
                  file=sys.stderr)
        else:
            await accounts.set_password(store, args.extension, password, utc_now())
            print(f"password set for {args.extension}; signed out everywhere", file=sys.stderr)
    finally:
        await store.close()
    return 0
