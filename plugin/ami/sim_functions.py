"""Setvar and Getvar without a channel, as Asterisk 22 answers them: global variables and the two dialplan
functions pbxsync writes, DEVICE_STATE(Custom:...) (func_devstate) and PRESENCE_STATE(CustomPresence:...)
(func_presencestate), kept in the simulated astdb.

Held against the real Asterisk 22 (tests/unit/test_ami_simulator_setvar.py lists the exchanges): "Variable
Set" / "Variable not set" / "No variable specified"; an unknown state value is refused; a presence value is
`state,subtype,message,options` with option `e` meaning base64 subtype and message, read back decoded unless
the read asks for `e` too; an unset custom device state reads UNKNOWN. Each change raises
DeviceStateChange / PresenceStateChange (class `call`).
"""

from __future__ import annotations

import base64
import binascii

from pbxsync.plugin.ami.sim_world import World

DEVICE_STATES = ("UNKNOWN", "NOT_INUSE", "INUSE", "BUSY", "INVALID", "UNAVAILABLE", "RINGING", "RINGINUSE",
                 "ONHOLD")
PRESENCE_STATES = ("not_set", "unavailable", "available", "away", "xa", "chat", "dnd")


def _function(name: str) -> tuple[str, list[str]] | None:
    """"F(a,b)" -> ("F", ["a", "b"]); None for a plain variable name."""
    if not name.endswith(")") or "(" not in name:
        return None
    func, _, args = name[:-1].partition("(")
    return func.strip().upper(), args.split(",")


def _parse_presence(value: str) -> tuple[str, str, str, str] | None:
    parts = value.split(",", 3)
    parts += [""] * (4 - len(parts))
    state, subtype, message, options = parts
    if state.lower() not in PRESENCE_STATES or (options and "e" not in options):
        return None
    return state.lower(), subtype, message, options


def _decode(text: str) -> str:
    try:
        return base64.b64decode(text).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def write(world: World, name: str, value: str) -> bool:
    """Setvar: True when set (False: the function refused it, "Variable not set")."""
    call = _function(name)
    if call is None:
        world.global_vars[name] = value
        return True
    func, args = call
    target = args[0] if args else ""
    if func == "DEVICE_STATE":
        device = target[len("Custom:"):] if target.lower().startswith("custom:") else ""
        if not device or value.upper() not in DEVICE_STATES or value.upper() == "UNKNOWN":
            return False
        world.astdb[f"CustomDevstate/{device}"] = value
        world.emit("call", [("Event", "DeviceStateChange"), ("Privilege", "call,all"),
                            ("Device", f"Custom:{device}"), ("State", value.upper())])
        return True
    if func == "PRESENCE_STATE":
        entity = target[len("CustomPresence:"):] if target.lower().startswith("custompresence:") else ""
        parsed = _parse_presence(value)
        if not entity or parsed is None:
            return False
        world.astdb[f"CustomPresence/{entity}"] = value
        state, subtype, message, options = parsed
        if "e" in options:
            subtype, message = _decode(subtype), _decode(message)
        world.emit("call", [("Event", "PresenceStateChange"), ("Privilege", "call,all"),
                            ("Presentity", f"CustomPresence:{entity}"), ("Status", state), ("Subtype", subtype),
                            ("Message", message)])
        return True
    return False


def read(world: World, name: str) -> str:
    """Getvar: the value ("" when the function failed, as manager.c answers then)."""
    call = _function(name)
    if call is None:
        return world.global_vars.get(name, "")
    func, args = call
    target = args[0] if args else ""
    if func == "DEVICE_STATE":
        if target.lower().startswith("custom:"):
            return world.astdb.get(f"CustomDevstate/{target[len('Custom:'):]}", "UNKNOWN").upper()
        return "UNKNOWN"
    if func == "PRESENCE_STATE":
        field = args[1].strip().lower() if len(args) > 1 else ""
        encode = len(args) > 2 and "e" in args[2]
        if not field:
            return ""
        stored = world.astdb.get(f"CustomPresence/{target[len('CustomPresence:'):]}", "")
        parsed = _parse_presence(stored) if stored else ("not_set", "", "", "")
        if parsed is None:
            return ""
        state, subtype, message, options = parsed
        if "e" in options:
            subtype, message = _decode(subtype), _decode(message)
        if field == "value":
            return state
        text = {"subtype": subtype, "message": message}.get(field, "")
        return base64.b64encode(text.encode("utf-8")).decode("ascii") if encode and text else text
    return ""
