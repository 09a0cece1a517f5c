"""Who is in a conference room: ConfBridge's events and ConfbridgeList, matched to the participants."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Mapping, Sequence

from pbxsync.plugin.ami.wire import AmiMessage, render_dial
from pbxsync.sync.errors import ValidationError

ROOM_EVENTS = ("ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd")


class RoomMembers:
    """Room membership as the ConfBridge events tell it, refreshed from ConfbridgeList when asked."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, AmiMessage]] = {}

    def on_event(self, message: AmiMessage) -> str:
        room = message.get("Conference")
        if message.name == "ConfbridgeJoin":
            self._rooms.setdefault(room, {})[message.get("Uniqueid")] = message
        elif message.name == "ConfbridgeLeave":
            self._rooms.get(room, {}).pop(message.get("Uniqueid"), None)
        elif message.name == "ConfbridgeEnd":
            self._rooms.pop(room, None)
        return room

    def replace(self, room: str, members: Iterable[AmiMessage]) -> None:
        self._rooms[room] = {m.get("Uniqueid"): m for m in members}

    def members(self, room: str) -> list[AmiMessage]:
        return list(self._rooms.get(room, {}).values())


def present_extensions(members: Sequence[AmiMessage], our_channels: Mapping[str, str],
                       extensions: Collection[str], dial_template: str) -> set[str]:
    """Which participants' extensions are in the room: our calls by Uniqueid (= our ChannelId), others
    who dialled in by their channel name (`PJSIP/101-...`) or caller number."""
    prefixes: dict[str, str] = {}
    for ext in extensions:
        with contextlib.suppress(ValidationError):
            prefixes[render_dial(dial_template, ext) + "-"] = ext
    found: set[str] = set()
    for m in members:
        uid = m.get("Uniqueid")
        if uid in our_channels:
            found.add(our_channels[uid])
            continue
        channel = m.get("Channel")
        for prefix, ext in prefixes.items():
            if channel.startswith(prefix):
                found.add(ext)
        if m.get("CallerIDNum") in extensions:
            found.add(m.get("CallerIDNum"))
    return found
