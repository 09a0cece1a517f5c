"""`pbxsync phonebook token EXT` and `pbxsync phonebook revoke EXT`: per-phone phonebook URLs.

A token lets a phone that cannot send HTTP Basic credentials fetch its user's book
(`/yealink/<token>.xml`). It is printed once, inside one URL per vendor format; the store keeps only its
SHA-256 (plugin.phonebook.tokens). The running daemon picks a new or revoked token up within
`[phonebook] refresh_seconds`.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

from pbxsync.plugin.commands.common import config_from, store_from, utc_now
from pbxsync.plugin.phonebook.pages import FORMATS
from pbxsync.plugin.phonebook.tokens import add_token, revoke_tokens
from pbxsync.sync.config import Config
from pbxsync.sync.errors import UserError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("phonebook", help="per-phone URLs of the XML phonebooks",
                                   description="Make or revoke the tokens phones use to fetch their user's XML "
                                   "phonebook without HTTP Basic credentials (see docs/phones.md).")
    actions = parser.add_subparsers(dest="phonebook_action", metavar="ACTION")
    actions.required = True
    token = actions.add_parser("token", help="make a token for a user's phone and print its URL per vendor")
    token.add_argument("extension", metavar="EXT", help="the PBX user (extension) whose book the phone gets")
    token.add_argument("--base-url", metavar="URL",
                       help="how phones reach the phonebook, e.g. https://pbx.example.com:8089 "
                       "(default: from [phonebook] listen)")
    token.set_defaults(handler=token_cmd)
    revoke = actions.add_parser("revoke", help="revoke every token of a user's phones")
    revoke.add_argument("extension", metavar="EXT", help="the PBX user (extension); also one no longer in [[users]]")
    revoke.set_defaults(handler=revoke_cmd)


def base_url(config: Config, explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    listen = config.phonebook.listen
    if listen is None:
        raise UserError("phonebook.listen: not set; the XML phonebook is off")
    scheme = "https" if config.phonebook.tls_cert else "http"
    host = listen.host
    if host in ("0.0.0.0", "::"):  # every address: name this machine instead
        host = socket.getfqdn()
    elif listen.is_ipv6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{listen.port}"


def _user(config: Config, extension: str) -> str:
    if config.user_by_extension(extension) is None:
        raise UserError(f"no [[users]] entry with extension {extension!r}")
    return extension


async def token_cmd(args: argparse.Namespace) -> int:
    config = config_from(args)
    extension = _user(config, args.extension)
    base = base_url(config, args.base_url)
    store = await store_from(config)
    try:
        token = await add_token(store, extension, utc_now())
    finally:
        await store.close()
    print(f"Phonebook URLs for extension {extension} (keep them secret; `pbxsync phonebook revoke "
          f"{extension}` revokes them):")
    for name in FORMATS:
        print(f"  {name:12} {base}/{name}/{token}.xml")
    return 0


async def revoke_cmd(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = await store_from(config)
    try:
        count = await revoke_tokens(store, args.extension)
    finally:
        await store.close()
    if count == 0 and config.user_by_extension(args.extension) is None:  # a typo, not "nothing to revoke"
        raise UserError(f"no [[users]] entry with extension {args.extension!r}, and no token of it to revoke")
    print(f"{count} token(s) of extension {args.extension} revoked")
    return 0
