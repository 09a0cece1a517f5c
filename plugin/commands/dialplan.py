"""`pbxsync dialplan [--write DIR]`: the Asterisk files pbxsync needs, filled in for the current config.

Prints dialplan/pbxsync-autocall.conf, pbxsync-confbridge.conf, pbxsync-manager.conf, pbxsync-agi.conf and
pbxsync-presence.conf (see docs/asterisk.md for where each goes). The AMI secret is never printed: the
manager.conf user gets a placeholder the admin replaces.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pbxsync.plugin.autocall.dialplan import DialplanNames, render
from pbxsync.plugin.commands.common import config_from
from pbxsync.sync.errors import UserError, ValidationError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dialplan", help="print the Asterisk dialplan (AUTOCALL, FastAGI), confbridge profiles and manager.conf user",
        description="The AUTOCALL context, the FastAGI contexts (caller-ID names, room dial-in), the presence route "
        "(voicemail while in a meeting), the conference "
        "profiles and a least-privilege AMI user, filled in for the current config. Include them as "
        "docs/asterisk.md describes.")
    parser.add_argument("--write", metavar="DIR", help="write the files into DIR instead of printing them")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    try:
        files = render(DialplanNames.from_config(config))
    except ValidationError as exc:
        raise UserError(f"pbx.context/pbx.username/agi.listen: {exc}") from None
    if args.write:
        target = Path(args.write)
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (target / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--write {target}: {exc.strerror or exc}") from None
        print(f"wrote {', '.join(files)} into {target}")
        return 0
    for name, text in files.items():
        print(f";; ===== {name} =====")
        print(text)
    return 0
