"""A user's presence as Asterisk state: the custom device state and the custom presence state, set over AMI.

Both are dialplan functions written with the AMI action `Setvar` without a Channel (manager.c hands a name
ending in ")" to the function's write callback; Setvar needs the write class `call`, which pbxsync's
manager user has):
- `DEVICE_STATE(Custom:pbxsync-<ext>)` = BUSY | NOT_INUSE (func_devstate; kept in the astdb, so it
  survives an Asterisk restart). A hint `exten => 101,hint,PJSIP/101&Custom:pbxsync-101` shows it on BLF keys.
- `PRESENCE_STATE(CustomPresence:<ext>)` = `value,subtype,message,options` (func_presencestate). The value
  is split on commas, so the message would be cut at its first comma; it is therefore sent base64 encoded
  with the option `e` ("the subtype and message provided are Base64 encoded"; reading it back without `e`
  gives the plain text). Asterisk decodes it into 256 bytes, so the message is cut to 200 bytes of UTF-8.
  It comes from pbxsync's own template with `{until}` only, never from a meeting's subject.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, tzinfo

from pbxsync.plugin.ami.wire import validate_extension
from pbxsync.plugin.presence.state import UserState
from pbxsync.sync.model import ShowAs

DEVICE_PREFIX = "Custom:pbxsync-"
PRESENCE_PREFIX = "CustomPresence:"
MAX_MESSAGE_BYTES = 200  # Asterisk decodes into char[256]; leave room


@dataclass(frozen=True)
class AsteriskPresence:
    """What one user's two Asterisk states are set to."""

    device_state: str  # BUSY | NOT_INUSE
    presence: str  # dnd | away | available
    message: str  # plain text, "" when available


@dataclass(frozen=True)
class Templates:
    message: str = "In a meeting until {until}"
    oof_message: str = "Out of office until {until}"


def until_text(until: datetime, now: datetime, zone: tzinfo | None) -> str:
    """HH:MM in `zone` (None: the host's local zone), with the date when it is not today there."""
    local_until, local_now = until.astimezone(zone), now.astimezone(zone)
    if local_until.date() == local_now.date():
        return local_until.strftime("%H:%M")
    return local_until.strftime("%Y-%m-%d %H:%M")


def clean_message(text: str) -> str:
    """One line of printable text of at most MAX_MESSAGE_BYTES UTF-8 bytes (no CR/LF reaches AMI)."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    raw = line.encode("utf-8")[:MAX_MESSAGE_BYTES]
    return raw.decode("utf-8", errors="ignore")


def asterisk_presence(state: UserState, now: datetime, templates: Templates, zone: tzinfo | None) -> AsteriskPresence:
    if not state.busy or state.until is None:
        return AsteriskPresence("NOT_INUSE", "available", "")
    oof = state.show_as is ShowAs.OOF
    template = templates.oof_message if oof else templates.message
    try:
        message = template.format(until=until_text(state.until, now, zone))
    except (KeyError, IndexError, ValueError):  # the config check refuses these; never fail a user over it
        message = template
    return AsteriskPresence("BUSY", "away" if oof else "dnd", clean_message(message))


def device_variable(extension: str) -> str:
    return f"DEVICE_STATE({DEVICE_PREFIX}{validate_extension(extension)})"


def presence_variable(extension: str) -> str:
    return f"PRESENCE_STATE({PRESENCE_PREFIX}{validate_extension(extension)})"


def presence_value(presence: AsteriskPresence) -> str:
    """`value,subtype,message,e` with subtype and message base64 encoded (commas cannot split them)."""
    message = base64.b64encode(presence.message.encode("utf-8")).decode("ascii")
    return f"{presence.presence},,{message},e"


def setvar_actions(extension: str, presence: AsteriskPresence) -> list[list[tuple[str, str]]]:
    """The headers of the two Setvar actions for one user (device state first)."""
    return [[("Variable", device_variable(extension)), ("Value", presence.device_state)],
            [("Variable", presence_variable(extension)), ("Value", presence_value(presence))]]
