"""`pbxsync check` for presence (`[presence] enabled = true`), over the AMI login of plugin/check/ami.py.

- Setvar: presence writes the custom device and presence states with the AMI action Setvar (write class
  `call`). Probed without a Variable: Asterisk checks the class first, then answers "No variable
  specified", so nothing is set.
- BLF hints: a phone's BLF key shows the calendar only if the user's hint names `Custom:pbxsync-<ext>`.
  The hints are read with ExtensionStateList; users whose hint does not name it get the line to add
  (docs/asterisk.md, "Presence"). A warning, not a failure: presence state is still set, and the
  `/presence` FastAGI routing works without hints.
"""

from __future__ import annotations

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.presence.asterisk import DEVICE_PREFIX
from pbxsync.plugin.presence.calendar import PresenceSettings
from pbxsync.sync.config import Config
from pbxsync.sync.errors import AmiPermissionError, PbxError
from pbxsync.sync.preflight import CheckResult, failed, passed, warned

SETVAR = "presence: ami setvar"
HINTS = "presence: blf hints"
NAMES = (SETVAR, HINTS)
MAX_NAMED = 5  # users named in one line; the rest are counted


def hint_line(extension: str) -> str:
    return f"exten => {extension},hint,PJSIP/{extension}&{DEVICE_PREFIX}{extension}"


async def check_presence(config: Config, client: AmiClient) -> list[CheckResult]:
    """The presence lines (none when presence is off); `client` is logged in."""
    if not config.presence.enabled:
        return []
    return [await _setvar(client, config.pbx.username), await _hints(client, config)]


async def _setvar(client: AmiClient, username: str) -> CheckResult:
    try:
        await client.action("Setvar", [])
    except AmiPermissionError:
        return failed(SETVAR, f"AMI user '{username}' may not run Setvar (needs write class 'call'): no BLF or "
                      "presence state can be set",
                      f"add 'call' to write= in the [{username}] section of manager.conf, then "
                      "`asterisk -rx 'manager reload'`")
    except PbxError as exc:  # refused for the missing Variable: the class is granted
        return passed(SETVAR, f"Setvar allowed ({exc}): custom device and presence states can be set")
    return passed(SETVAR, "Setvar allowed: custom device and presence states can be set")


async def _hints(client: AmiClient, config: Config) -> CheckResult:
    users = [u.extension for u in PresenceSettings.from_config(config).users]
    if not users:
        return warned(HINTS, "no user has presence on ([[users]] presence, sync_calendar)",
                      "turn calendar sync on for the users whose BLF keys should show meetings")
    try:
        rows = await client.list_action("ExtensionStateList")
    except PbxError as exc:
        return warned(HINTS, f"cannot list the hints ({exc})", _advice(users[0]))
    # A hint is "devices[,presence provider]", the devices joined with "&"; Asterisk matches the
    # "Custom:" provider name without regard to case.
    devices = {d.strip().lower() for r in rows for d in r.get("Hint").partition(",")[0].split("&")}
    missing = [ext for ext in users if f"{DEVICE_PREFIX}{ext}".lower() not in devices]
    if not missing:
        return passed(HINTS, f"every presence user's hint shows {DEVICE_PREFIX}<ext> ({len(users)} user(s))")
    named = ", ".join(missing[:MAX_NAMED])
    if len(missing) > MAX_NAMED:
        named += f" and {len(missing) - MAX_NAMED} more"
    return warned(HINTS, f"{len(missing)} of {len(users)} presence user(s) have no hint with "
                  f"{DEVICE_PREFIX}<ext>, so their BLF keys do not show meetings: {named}", _advice(missing[0]))


def _advice(extension: str) -> str:
    return (f"add `{hint_line(extension)}` (the same for each user) next to the phone's own device (FreePBX: "
            "extensions_custom.conf; docs/asterisk.md, Presence), then `asterisk -rx 'dialplan reload'`")
