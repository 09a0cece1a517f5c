"""The simulated Asterisk behind the manager interface: phones, channels, ConfBridge rooms, voicemail
users, and what an Originate ends in.

Nothing here knows about connections or logins (that is `plugin.ami.simulator`); what happens in the world
is told through `emit(privilege class, event headers)`, which the manager interface fans out to every
session reading that class. Events carry the fields Asterisk 22 sends (see the transcripts the simulator
is held against).

A phone's behaviour decides how an Originate to it ends: answered (Reason 4), busy (5), no answer after
the Originate's Timeout (3), congestion (8), or not placed at all (0: unknown extension, or a ChannelId
still in use). A ringing call can be hung up (Reason 0 with the ChannelId as Uniqueid). An answered call
into the AUTOCALL context (or to the ConfBridge application) joins the room its variables name; one that
does not press 1 when PBXSYNC_CONFIRM=1 asks for it is hung up by the dialplan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

REASON_ANSWERED, REASON_BUSY, REASON_NO_ANSWER, REASON_CONGESTION, REASON_FAILED = 4, 5, 3, 8, 0
UNKNOWN = "<unknown>"  # what Asterisk shows for a missing caller ID or channel

Headers = list[tuple[str, str]]
EventSink = Callable[[str, Headers], None]  # (privilege class, event headers)


class PhoneBehaviour(StrEnum):
    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    UNKNOWN = "unknown"  # no such extension


@dataclass
class Phone:
    extension: str
    behaviour: PhoneBehaviour = PhoneBehaviour.ANSWER
    answer_delay: float = 0.0  # seconds (scaled by time_scale) until answer/busy/congestion
    presses_confirm: bool = True  # with PBXSYNC_CONFIRM=1 a phone that does not press 1 never joins


@dataclass
class Member:
    channel: str
    uniqueid: str
    caller_num: str
    caller_name: str
    context: str
    exten: str
    priority: str
    admin: bool = False
    marked: bool = False
    muted: bool = False
    joined_at: float = field(default_factory=time.monotonic)

    def snapshot(self) -> Headers:
        return [("Channel", self.channel), ("ChannelState", "6"), ("ChannelStateDesc", "Up"),
                ("CallerIDNum", self.caller_num), ("CallerIDName", self.caller_name),
                ("ConnectedLineNum", self.caller_num), ("ConnectedLineName", self.caller_name),
                ("Language", "en"), ("AccountCode", ""), ("Context", self.context), ("Exten", self.exten),
                ("Priority", self.priority), ("Uniqueid", self.uniqueid), ("Linkedid", self.uniqueid)]


@dataclass
class Room:
    name: str
    bridge_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    members: list[Member] = field(default_factory=list)
    locked: bool = False

    def bridge(self, channels: int) -> Headers:
        # BridgeNumChannels counts ConfBridge's hidden announcer channel too (transcripts 07/08).
        return [("Conference", self.name), ("BridgeUniqueid", self.bridge_id), ("BridgeType", "base"),
                ("BridgeTechnology", "softmix"), ("BridgeCreator", "ConfBridge"), ("BridgeName", self.name),
                ("BridgeNumChannels", str(channels)), ("BridgeVideoSourceMode", "none")]


@dataclass(frozen=True)
class VoicemailUser:
    mailbox: str
    fullname: str
    email: str
    context: str = "default"


DEFAULT_AUTOCALL_CONTEXT = (("s", "1", "Answer", ""), ("s", "2", "Set", "CALLERID(name)=Meeting"),
                            ("s", "3", "ConfBridge", "${PBXSYNC_ROOM}"))


@dataclass(frozen=True)
class OriginateRequest:
    """What an Originate asks for, as the world needs it (header values as sent)."""

    dial: str  # the Channel header: tech/resource[@context]
    channel_id: str = ""
    timeout_ms: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    caller_num: str = ""
    caller_name: str = ""
    application: str = ""  # Application/Data, or else Context/Exten
    data: str = ""
    context: str = ""
    exten: str = ""


@dataclass(frozen=True)
class CallOutcome:
    answered: bool
    reason: int  # the OriginateResponse Reason code
    channel: str  # the call's channel, or the dial string when none was created
    uniqueid: str  # UNKNOWN when no channel was created
    room: str = ""  # the ConfBridge room the call joins ("" for none)
    member: Member | None = None  # as it will show in that room


class World:
    """The simulated PBX's state. `emit` is set by the manager interface that reports on it."""

    def __init__(self, *, phones: Iterable[Phone] = (), voicemail: Iterable[VoicemailUser] = (),
                 channel_counter: int = 0, time_scale: float = 1.0, autocall_context: str = "pbxsync-autocall",
                 dialplan: Mapping[str, Iterable[tuple[str, str, str, str]]] | None = None,
                 commands: Mapping[str, list[str]] | None = None,
                 modules: Iterable[str] = ("app_confbridge", "app_voicemail", "chan_pjsip", "pbx_config"),
                 version: str = "22.10.1", clock: Callable[[], float] = time.time) -> None:
        self.phones = {p.extension: p for p in phones}
        self.voicemail = list(voicemail)
        self.channel_counter = channel_counter
        self.time_scale = time_scale
        self.autocall_context = autocall_context
        self.dialplan = {k: list(v) for k, v in (dialplan or {autocall_context: DEFAULT_AUTOCALL_CONTEXT}).items()}
        self.commands = dict(commands or {})
        self.modules = set(modules)
        self.version = version
        self.clock = clock
        self.started_at = clock()
        self.rooms: dict[str, Room] = {}
        self.live_uniqueids: set[str] = set()
        self.ringing: dict[str, asyncio.Event] = {}  # channel name -> set by a Hangup action
        self.astdb: dict[str, str] = {}  # "family/key" -> value: custom device and presence states
        self.global_vars: dict[str, str] = {}  # set by Setvar without a channel (plugin.ami.sim_functions)
        self.emit: EventSink = lambda privilege_class, headers: None
        self._uniq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- background work ------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def end_all_calls(self) -> None:
        """The PBX goes down: every room and call is gone (no events: nobody is listening any more)."""
        self.rooms.clear()
        self.live_uniqueids.clear()

    # ---- inspection -----------------------------------------------------------------------------------
    @property
    def current_calls(self) -> int:
        return sum(len(r.members) for r in self.rooms.values())

    @property
    def processed_calls(self) -> int:
        return self._uniq // 2

    def members(self, room: str) -> list[Member]:
        found = self.rooms.get(room)
        return list(found.members) if found else []

    def add_member(self, room: str, member: Member) -> None:
        """Put a member into a room without events (test setup, e.g. a participant who dialled in)."""
        self.rooms.setdefault(room, Room(room)).members.append(member)
        self.live_uniqueids.add(member.uniqueid)

    # ---- rooms ----------------------------------------------------------------------------------------
    async def join(self, room_name: str, member: Member) -> None:
        room = self.rooms.get(room_name)
        if room is None:
            room = self.rooms[room_name] = Room(room_name)
            self.channel_counter += 1  # ConfBridge's announcer channel takes a number too
            self.emit("call", [("Event", "ConfbridgeStart"), ("Privilege", "call,all"), *room.bridge(1)])
        room.members.append(member)
        self.emit("call", [("Event", "ConfbridgeJoin"), ("Privilege", "call,all"),
                           *room.bridge(1 + len(room.members)), *member.snapshot(),
                           ("Admin", "Yes" if member.admin else "No"), ("Muted", "No")])

    async def leave(self, room: Room, leaving: list[Member]) -> None:
        await asyncio.sleep(0)  # the Response goes out first; Leave/End follow asynchronously (22)
        channels = 1 + len(room.members)
        for member in leaving:
            self.emit("call", [("Event", "ConfbridgeLeave"), ("Privilege", "call,all"),
                               *room.bridge(channels), *member.snapshot(),
                               ("Admin", "Yes" if member.admin else "No")])
        for member in leaving:
            if member in room.members:
                room.members.remove(member)
            self.live_uniqueids.discard(member.uniqueid)
            self._channel_event("Hangup", member.channel, member.uniqueid, 6, member.context, member.exten,
                                (("Cause", "16"), ("Cause-txt", "Normal Clearing")))
        if not room.members:
            self.emit("call", [("Event", "ConfbridgeEnd"), ("Privilege", "call,all"), *room.bridge(1)])
            self.rooms.pop(room.name, None)

    def hang_up(self, channel: str) -> bool:
        """Hang up a ringing call or a room member's channel; False when there is no such channel."""
        ringing = self.ringing.get(channel)
        if ringing is not None:
            ringing.set()
            return True
        for room in self.rooms.values():
            found = [m for m in room.members if m.channel == channel]
            if found:
                self.spawn(self.leave(room, found))
                return True
        return False

    # ---- channels -------------------------------------------------------------------------------------
    def _channel_event(self, name: str, channel: str, uniqueid: str, state: int, context: str, exten: str,
                       extra: Iterable[tuple[str, str]] = ()) -> None:
        """Newchannel / Hangup with the fields Asterisk 22 sends (transcripts 11-13)."""
        states = {0: "Down", 5: "Ringing", 6: "Up"}
        self.emit("call", [("Event", name), ("Privilege", "call,all"), ("Channel", channel),
                           ("ChannelState", str(state)), ("ChannelStateDesc", states.get(state, "Down")),
                           ("CallerIDNum", UNKNOWN), ("CallerIDName", UNKNOWN),
                           ("ConnectedLineNum", UNKNOWN), ("ConnectedLineName", UNKNOWN),
                           ("Language", "en"), ("AccountCode", ""), ("Context", context), ("Exten", exten),
                           ("Priority", "1"), ("Uniqueid", uniqueid), ("Linkedid", uniqueid), *extra])

    async def _hang_up_later(self, channel: str, uniqueid: str, context: str, exten: str) -> None:
        await asyncio.sleep(0)  # after the OriginateResponse
        self.live_uniqueids.discard(uniqueid)
        self._channel_event("Hangup", channel, uniqueid, 6, context, exten,
                            (("Cause", "16"), ("Cause-txt", "Normal Clearing")))

    def _new_uniqueid(self) -> str:
        value = f"{int(self.started_at)}.{self._uniq}"
        self._uniq += 1
        return value

    async def place_call(self, req: OriginateRequest) -> CallOutcome:
        """Dial, ring and end (or answer) one call; the caller joins the answered call to `outcome.room`."""
        dial = req.dial
        extension = dial.partition("/")[2].split("@", 1)[0]
        phone = self.phones.get(extension, Phone(extension, PhoneBehaviour.UNKNOWN))
        counter = self.channel_counter
        self.channel_counter += 1
        duplicate = bool(req.channel_id) and req.channel_id in self.live_uniqueids
        behaviour = PhoneBehaviour.UNKNOWN if duplicate else phone.behaviour
        if behaviour is PhoneBehaviour.UNKNOWN:
            return CallOutcome(False, REASON_FAILED, dial, UNKNOWN)
        channel = f"{dial}-{counter:08x};1"
        uniqueid = req.channel_id or self._new_uniqueid()
        if not req.channel_id:
            self._new_uniqueid()  # the ;2 half takes the next one
        where = dial.partition("@")[2] or "default", extension
        self._channel_event("Newchannel", channel, uniqueid, 0, *where)
        ring = phone.answer_delay
        if behaviour is PhoneBehaviour.NO_ANSWER:
            ring = int(req.timeout_ms or "30000") / 1000
        hung_up = self.ringing[channel] = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hung_up.wait(), ring * self.time_scale)
        finally:
            self.ringing.pop(channel, None)
        ended = {PhoneBehaviour.NO_ANSWER: (REASON_NO_ANSWER, "19", "User alerting, no answer"),
                 PhoneBehaviour.BUSY: (REASON_BUSY, "17", "User busy"),
                 PhoneBehaviour.CONGESTION: (REASON_CONGESTION, "34", "Circuit/channel congestion")}
        if hung_up.is_set() or behaviour in ended:
            reason, cause, text = (REASON_FAILED, "16", "Normal Clearing") if hung_up.is_set() else ended[behaviour]
            self._channel_event("Hangup", channel, uniqueid, 5, *where, (("Cause", cause), ("Cause-txt", text)))
            return CallOutcome(False, reason, dial, uniqueid if hung_up.is_set() else UNKNOWN)
        self.live_uniqueids.add(uniqueid)
        room_name = ""
        context, exten, priority = req.context, req.exten, ""
        if req.application.lower() == "confbridge":
            room_name = req.data.split(",")[0]
            context, exten, priority = dial.partition("@")[2] or "default", extension, "1"
        elif req.context == self.autocall_context:
            room_name = req.variables.get("PBXSYNC_ROOM", "")
            priority = next((p for _, p, app, _ in self.dialplan.get(context, []) if app == "ConfBridge"), "1")
            if req.variables.get("PBXSYNC_CONFIRM") == "1" and not phone.presses_confirm:
                room_name = ""
        if not room_name:  # declined or nowhere to go: the dialplan hangs up
            self.spawn(self._hang_up_later(channel, uniqueid, context, exten))
            return CallOutcome(True, REASON_ANSWERED, channel, uniqueid)
        host = req.variables.get("PBXSYNC_ROLE") == "host"
        member = Member(channel, uniqueid, req.caller_num or UNKNOWN, req.caller_name or UNKNOWN, context, exten,
                        priority, admin=host, marked=host)
        return CallOutcome(True, REASON_ANSWERED, channel, uniqueid, room_name, member)


def load_phones(path: str | Path | Traversable) -> list[Phone]:
    """Phones from a JSON file: {"101": "answer", "199": "busy", "198": {"behaviour": "no_answer"}}."""
    data = json.loads((Path(path) if isinstance(path, str) else path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("phones file must hold a JSON object of extension -> behaviour")
    phones: list[Phone] = []
    for extension, spec in data.items():
        if isinstance(spec, str):
            phones.append(Phone(str(extension), PhoneBehaviour(spec)))
        elif isinstance(spec, dict):
            phones.append(Phone(str(extension), PhoneBehaviour(spec.get("behaviour", "answer")),
                                float(spec.get("answer_delay", 0.0)), bool(spec.get("presses_confirm", True))))
        else:
            raise ValueError(f"phone {extension}: expected a behaviour name or an object")
    return phones
