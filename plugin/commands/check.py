"""`pbxsync check [--json]`: preflight; one line per check with PASS/FAIL and a fix. Exit 0 only if all pass."""

from __future__ import annotations

import argparse

from pbxsync.plugin.check.runner import run_checks
from pbxsync.plugin.commands.common import add_json_flag, config_from, print_json
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.preflight import CheckResult, failed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="preflight: config, database, Exchange, AMI, dialplan, ports",
                       description="Check everything pbxsync needs and print one line per check with PASS or "
                       "FAIL and how to fix it. Exit code 0 only when every check passes.")
    add_json_flag(p)
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long each network check may take (default 30)")
    p.set_defaults(handler=check)


def report(results: list[CheckResult], as_json: bool) -> int:
    ok = all(r.passed for r in results)
    if as_json:
        print_json({"ok": ok, "checks": [r.as_json() for r in results]})
    else:
        for r in results:
            print(r.line(), flush=True)
        bad = sum(1 for r in results if not r.passed)  # a WARN line passed, and says what to fix
        print(f"{len(results) - bad} of {len(results)} checks passed" + ("" if ok else f"; {bad} need attention"))
    return 0 if ok else 1


async def check(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except ConfigError as exc:
        fix = "correct the listed keys (every key is described in examples/pbxsync.toml)"
        results = [failed("config", f"{exc.source}: {p}", fix) for p in exc.problems]
        return report(results, args.json)
    return report(await run_checks(config, within=args.timeout), args.json)
