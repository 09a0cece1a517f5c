"""AMI checks: login, each permission pbxsync needs, app_confbridge, the shipped dialplan context.

Permissions are probed with actions that cannot change anything: Asterisk checks the write class before
it looks at the arguments, so an Originate without a Channel answers "Permission denied" without the
`originate` class and "Channel not specified" with it (nothing is dialled); a ConfbridgeKick of a room
that does not exist needs `call`; ConfbridgeListRooms needs `reporting`. `system` is a read class
(Asterisk restarts), seen as the FullyBooted event Asterisk sends right after login only to users who
may read it. The least-privilege user cannot run ModuleCheck (write=system), so app_confbridge is then
recognised by its actions existing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.check.presence import NAMES as PRESENCE_CHECKS
from pbxsync.plugin.check.presence import check_presence
from pbxsync.sync.config import Config
from pbxsync.sync.errors import AmiPermissionError, PbxError
from pbxsync.sync.preflight import CheckResult, failed, passed, skipped

MANAGER_SNIPPET = "dialplan/ (the least-privilege manager.conf user: read=call,system write=originate,call,reporting)"
_NOT_A_ROOM = "pbxsync-check-no-such-room"


def _login_fix(config: Config) -> str:
    return (f"set [pbx] username/secret to a manager.conf user of that Asterisk (see {MANAGER_SNIPPET}), "
            f"make sure its permit= allows this host, then `asterisk -rx 'manager reload'`")


def _connect_fix(config: Config) -> str:
    pbx = config.pbx
    return (f"start Asterisk, and enable its manager interface in /etc/asterisk/manager.conf "
            f"([general] enabled = yes, port = {pbx.port}, bindaddr = {pbx.host}); or set [pbx] host/port "
            "to where it listens")


async def _login(client: AmiClient, within: float) -> str:
    """'' when logged in, else the link's last error (refused, auth failed, timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await client.wait_connected(within=0.05):
            return ""
        if client.health().last_error:
            return client.health().last_error
    return client.health().last_error or f"no AMI login within {within:g} s"


async def _permission(client: AmiClient, klass: str, action: str, headers: list[tuple[str, str]],
                      username: str, is_list: bool = False) -> CheckResult:
    name = f"ami permission {klass}"
    try:
        if is_list:
            await client.list_action(action, headers, empty_when=("No active conferences.",))
        else:
            await client.action(action, headers)
    except AmiPermissionError:
        return failed(name, f"AMI user '{username}' may not run {action} (needs write class '{klass}')",
                      f"add '{klass}' to write= in the [{username}] section of manager.conf "
                      f"(pbxsync needs write=originate,call,reporting and read=call,system), then "
                      "`asterisk -rx 'manager reload'`")
    except PbxError as exc:  # refused for its (deliberately harmless) arguments: the class is granted
        return passed(name, f"{action} allowed ({exc})")
    return passed(name, f"{action} allowed")


async def check_ami(config: Config, within: float = 10.0) -> list[CheckResult]:
    pbx = config.pbx
    where = f"{pbx.host}:{pbx.port}"
    settings = replace(AmiSettings.from_config(pbx), connect_timeout=min(within, 5.0),
                       action_timeout=min(pbx.action_timeout_seconds, within), backoff_initial=60.0)
    client = AmiClient(settings)
    booted = asyncio.Event()
    client.subscribe(["FullyBooted"], lambda _event: booted.set())  # only sent to users with read=system
    # The link logs its own reconnect warnings; in a preflight the result line says it better.
    link_log = logging.getLogger("pbxsync.ami")
    previous = link_log.level
    link_log.setLevel(logging.CRITICAL)
    client.start()
    try:
        error = await _login(client, within)
        results: list[CheckResult] = []
        dependants = ["ami permission originate", "ami permission call", "ami permission reporting",
                      "ami permission system", "asterisk module app_confbridge", f"dialplan context {pbx.context}"]
        if error:
            if "login" in error.lower() or "authentication" in error.lower():
                results.append(failed("ami login", f"{where} refused user '{pbx.username}': {error}",
                                      _login_fix(config)))
            else:
                results.append(failed("ami login", f"cannot reach the AMI at {where}: {error}",
                                      _connect_fix(config)))
            if config.presence.enabled:
                dependants += PRESENCE_CHECKS
            results += [skipped(n, "no AMI login", "fix the AMI login first") for n in dependants]
            return results
        banner = client.health().banner
        results.append(passed("ami login", f"logged in to {where} as '{pbx.username}' ({banner})"))
        user = pbx.username
        results.append(await _permission(client, "originate", "Originate",
                                         [("Context", pbx.context), ("Exten", "s"), ("Priority", "1")], user))
        results.append(await _permission(client, "call", "ConfbridgeKick",
                                         [("Conference", _NOT_A_ROOM), ("Channel", "all")], user))
        reporting = await _permission(client, "reporting", "ConfbridgeListRooms", [], user, is_list=True)
        results.append(reporting)
        results.append(await _read_system(booted, user))
        results.append(await _confbridge_module(client, reporting))
        results.append(await _context(client, pbx.context, user))
        results += await check_presence(config, client)
        return results
    finally:
        with contextlib.suppress(Exception):
            await client.stop()
        link_log.setLevel(previous)


async def _read_system(booted: asyncio.Event, username: str) -> CheckResult:
    """Asterisk sends FullyBooted right after login, to sessions that may read `system` events."""
    name = "ami permission system"
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(booted.wait(), 2.0)
    if booted.is_set():
        return passed(name, "system events are readable (FullyBooted received)")
    return failed(name, f"AMI user '{username}' gets no system events (no FullyBooted after login)",
                  f"add 'system' to read= in the [{username}] section of manager.conf (pbxsync needs "
                  "read=call,system to notice Asterisk restarts), then `asterisk -rx 'manager reload'`")


async def _confbridge_module(client: AmiClient, reporting: CheckResult) -> CheckResult:
    """ModuleCheck when the user may run it (write=system); else whether ConfBridge's actions exist."""
    name = "asterisk module app_confbridge"
    fix = ("load it: `asterisk -rx 'module load app_confbridge.so'` and make sure modules.conf does not "
           "noload it (FreePBX: Admin > Module Admin, Conferences)")
    try:
        await client.action("ModuleCheck", [("Module", "app_confbridge")])
    except AmiPermissionError:
        if "Invalid/unknown command" in reporting.detail:
            return failed(name, "ConfBridge's AMI actions do not exist, so app_confbridge is not loaded", fix)
        if reporting.passed:
            return passed(name, "app_confbridge answers ConfbridgeListRooms")
        return skipped(name, "neither ModuleCheck (write=system) nor ConfbridgeListRooms (write=reporting) "
                       "is allowed", "grant 'reporting' first")
    except PbxError as exc:
        return failed(name, f"app_confbridge is not loaded ({exc})", fix)
    return passed(name, "app_confbridge is loaded")
async def _context(client: AmiClient, context: str, username: str) -> CheckResult:
    name = f"dialplan context {context}"
    try:
        rows = await client.list_action("ShowDialPlan", [("Context", context)])
    except AmiPermissionError:
        return skipped(name, "ShowDialPlan needs the write class 'reporting'",
                       f"add 'reporting' to write= in the [{username}] section of manager.conf first")
    except PbxError as exc:
        return failed(name, f"not in the running dialplan ({exc})",
                      "print the shipped dialplan with `pbxsync dialplan`, include it from extensions.conf "
                      "(FreePBX: extensions_custom.conf) and run `asterisk -rx 'dialplan reload'`")
    confbridge = any(r.get("Application").lower() == "confbridge" for r in rows)
    if not confbridge:
        return failed(name, f"context {context} exists but never calls ConfBridge",
                      "replace it with the shipped one (`pbxsync dialplan`) and `dialplan reload`")
    return passed(name, f"present ({len(rows)} priorities, joins ConfBridge)")
