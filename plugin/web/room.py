"""A running conference seen and steered from the portal: who is in the room, and the host's controls.

Members come from ConfbridgeList at each look (the room is small, and the list is the truth; the events
AUTOCALL keeps in RoomMembers can lag a reconnect), each matched to a participant the way AUTOCALL does
it (`present_extensions`: our calls by their ChannelId, others by device or caller number).

Host actions act only on what the room holds right now: a channel to mute or kick must be in the fresh
ConfbridgeList of that booking's room (the form's value is only a key into it), so no request can name
another room's channel. "Call again" is AUTOCALL's own call path: a new attempt stored before it is sent,
placed by `place_call`, its outcome recorded, never for somebody already in the room.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.ami.wire import AmiMessage, validate_room
from pbxsync.plugin.autocall.calls import place_call
from pbxsync.plugin.autocall.planner import PlannedCall, channel_id_for
from pbxsync.plugin.autocall.presence import present_extensions
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.autocall.store import channel_ids, load_attempts, record_outcome, record_planned
from pbxsync.plugin.booking.model import Booking, Role
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxError, ValidationError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.web")

_BACKGROUND: set[asyncio.Task[Any]] = set()
_UNKNOWN = "<unknown>"  # Asterisk's caller ID when there is none


@dataclass(frozen=True)
class MemberView:
    key: str  # the member's channel: what a host's form sends back to name them
    name: str
    number: str
    extension: str  # the participant it is, "" for a guest pbxsync cannot match
    muted: bool
    host: bool


@dataclass(frozen=True)
class RoomView:
    reachable: bool  # False: the PBX could not be asked; `members` is then empty
    members: tuple[MemberView, ...]

    def as_json(self) -> dict[str, object]:
        return {"reachable": self.reachable,
                "members": [{"key": m.key, "name": m.name, "number": m.number, "extension": m.extension,
                             "muted": m.muted, "host": m.host} for m in self.members]}


async def room_members(ami: AmiClient | None, booking: Booking) -> list[AmiMessage] | None:
    """The room's members now; None when the PBX cannot be asked."""
    if ami is None or not ami.connected or not booking.draft.room:
        return None
    try:
        return await ami.confbridge_list(validate_room(booking.draft.room))
    except (PbxError, ValidationError) as exc:
        log.warning("web: ConfbridgeList for booking %d failed: %s", booking.id, exc)
        return None


async def room_view(ami: AmiClient | None, store: Store, config: Config, booking: Booking) -> RoomView:
    listed = await room_members(ami, booking)
    if listed is None:
        return RoomView(False, ())
    ours = await channel_ids(store, booking.id)
    names = {p.extension: p.name for p in booking.draft.participants}
    extensions = list(names)
    members = []
    for m in listed:
        found = present_extensions([m], ours, extensions, config.pbx.dial)
        extension = min(found) if found else ""
        number = m.get("CallerIDNum")
        number = "" if number in (_UNKNOWN, booking.draft.room) else number  # AUTOCALL's calls show the room
        name = names.get(extension) or m.get("CallerIDName") or number or "Guest"
        members.append(MemberView(m.get("Channel"), name if name != _UNKNOWN else "Guest", number, extension,
                                  m.get("Muted") == "Yes", m.get("Admin") == "Yes"))
    return RoomView(True, tuple(members))


HOST_ACTIONS = ("mute", "unmute", "kick", "lock", "unlock", "end", "call")


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str  # for the host, in words
    audit: str = ""  # for the booking's history ("" when nothing was done)


async def host_action(ami: AmiClient | None, store: Store, config: Config, clock: Clock, booking: Booking,
                      action: str, target: str) -> ActionResult:
    """Do `action` (HOST_ACTIONS) on the booking's room; `target` is a member's key or, to call, an extension."""
    if ami is None or not ami.connected:
        return ActionResult(False, "The phone system cannot be reached right now. Try again in a minute.")
    room = validate_room(booking.draft.room or "")
    try:
        if action in ("lock", "unlock"):
            await ami.action("ConfbridgeLock" if action == "lock" else "ConfbridgeUnlock", [("Conference", room)])
            return ActionResult(True, f"The room is {action}ed.", f"room {action}ed")
        if action == "end":
            await ami.confbridge_kick(room, "all")
            return ActionResult(True, "The conference was ended for everybody.", "conference ended")
        if action == "call":
            return await call_again(ami, store, config, clock, booking, target)
        view = await room_view(ami, store, config, booking)
        member = next((m for m in view.members if m.key == target), None)
        if member is None:
            return ActionResult(False, "That person is no longer in the room.")
        if action == "kick":
            await ami.confbridge_kick(room, member.key)
            return ActionResult(True, f"{member.name} was removed from the room.", f"removed {member.key}")
        name = "ConfbridgeMute" if action == "mute" else "ConfbridgeUnmute"
        await ami.action(name, [("Conference", room), ("Channel", member.key)])
        return ActionResult(True, f"{member.name} is {action}d.", f"{action}d {member.key}")
    except PbxError as exc:
        log.warning("web: host action %s on booking %d failed: %s", action, booking.id, exc)
        return ActionResult(False, "The phone system refused that; the room may have just ended.")


async def call_again(ami: AmiClient, store: Store, config: Config, clock: Clock, booking: Booking,
                     extension: str) -> ActionResult:
    person = next((p for p in booking.draft.participants if p.extension == extension and p.invited), None)
    if person is None or person.id is None:
        return ActionResult(False, "That is not a participant of this meeting.")
    listed = await ami.confbridge_list(validate_room(booking.draft.room or ""))
    settings = AutocallSettings.from_config(config)
    if extension in present_extensions(listed, await channel_ids(store, booking.id), [extension],
                                       settings.dial_template):
        return ActionResult(False, f"{person.name or extension} is already in the room.")
    attempts = [a for a in await load_attempts(store, booking.id) if a.participant_id == person.id]
    number = max((a.attempt for a in attempts), default=0) + 1
    call = PlannedCall(booking.id, person.id, extension, number,
                       channel_id_for(booking, person.id, extension, number), person.role is Role.HOST)
    if not await record_planned(store, call, clock.now()):
        return ActionResult(False, "That call is already on its way.")
    task = asyncio.get_running_loop().create_task(_place(ami, settings, store, clock, booking, call))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return ActionResult(True, f"Calling {person.name or extension} again.", f"called {extension} again")


async def _place(ami: AmiClient, settings: AutocallSettings, store: Store, clock: Clock, booking: Booking,
                 call: PlannedCall) -> None:
    result = await place_call(ami, settings, booking, call)
    await record_outcome(store, call.channel_id, result.outcome, result.reason, result.detail, clock.now())
    log.info("web: booking %d, extension %s called again by the host: %s", booking.id, call.extension,
             result.outcome.value)
