"""A simulated Asterisk 22 manager interface (AMI) on asyncio, for tests, benchmarks and `pbxsync demo`.

Faithful to ../shared/asterisk-ami-transcripts/ (tests/unit/test_ami_simulator_transcripts.py replays
them): banner without a blank line, CRLF, `Response` then `ActionID` then the rest, EventList framing,
error texts verbatim, ~1 s delay then close after a failed login, "Permission denied" before login and for
missing write classes, OriginateResponse (to every session reading `call`) before ConfbridgeStart/Join.

It models what pbxsync uses: Login (plain and MD5 challenge), Logoff, Ping, Originate (async and
synchronous) to scripted phones, ConfBridge rooms (List, ListRooms, Kick, Lock, Unlock, Join/Leave/End
events), Hangup of a member, VoicemailUsersList, CoreSettings, CoreStatus, ModuleCheck, ShowDialPlan,
Command and Shutdown. Of the channel-level events only Newchannel and Hangup are produced, and only for
the originated channel that carries the Originate's ChannelId (Asterisk also reports a Local channel's ;2
half, VarSet, Dial*, ...); a ringing call can be hung up (Hangup action: OriginateResponse Failure,
Reason 0, with the ChannelId as Uniqueid, as Asterisk 22 answers).

Faults for tests: `drop_connections()`, `half_open` (keep reading, never answer), `reply_delay`,
`send_garbage()`. Every byte each session received is kept in `Session.received`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources.abc import Traversable
from pathlib import Path

from pbxsync.plugin.ami.wire import AmiDecoder, AmiMessage

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
ALL_CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                         "reporting", "cdr", "dialplan", "originate", "agi"})
# Write classes per action, any one suffices (Asterisk 22 registrations). None = no class needed.
ACTION_CLASSES: dict[str, frozenset[str] | None] = {
    "ping": None, "logoff": None,
    "originate": frozenset({"originate"}),
    "confbridgelist": frozenset({"reporting"}), "confbridgelistrooms": frozenset({"reporting"}),
    "confbridgekick": frozenset({"call"}), "confbridgelock": frozenset({"call"}),
    "confbridgeunlock": frozenset({"call"}), "hangup": frozenset({"system", "call"}),
    "voicemailuserslist": frozenset({"call", "reporting"}),
    "coresettings": frozenset({"system", "reporting"}), "corestatus": frozenset({"system", "reporting"}),
    "modulecheck": frozenset({"system"}), "showdialplan": frozenset({"config", "reporting"}),
    "command": frozenset({"command"}),
}
REASON_ANSWERED, REASON_BUSY, REASON_NO_ANSWER, REASON_CONGESTION, REASON_FAILED = 4, 5, 3, 8, 0


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


@dataclass(frozen=True)
class SimUser:
    username: str
    secret: str
    read: frozenset[str] = ALL_CLASSES
    write: frozenset[str] = ALL_CLASSES


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
    joined_at: float = field(default_factory=time.monotonic)

    def snapshot(self) -> list[tuple[str, str]]:
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

    def bridge(self, channels: int) -> list[tuple[str, str]]:
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


class Session:
    """One client connection."""

    def __init__(self, sim: AsteriskSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.actions: list[AmiMessage] = []
        self.user: SimUser | None = None
        self.events: frozenset[str] = frozenset()
        self.challenge = ""
        self.closed = False

    def send(self, message: AmiMessage) -> None:
        if not self.closed and not self.sim.half_open:
            self.writer.write(message.encode())

    def wants(self, privilege_class: str) -> bool:
        return self.user is not None and privilege_class in self.events and privilege_class in self.user.read

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class AsteriskSimulator:
    def __init__(self, *, users: Iterable[SimUser] | None = None, phones: Iterable[Phone] = (),
                 voicemail: Iterable[VoicemailUser] = (), channel_counter: int = 0, time_scale: float = 1.0,
                 login_fail_delay: float = 1.0, autocall_context: str = "pbxsync-autocall",
                 dialplan: Mapping[str, Iterable[tuple[str, str, str, str]]] | None = None,
                 commands: Mapping[str, list[str]] | None = None,
                 modules: Iterable[str] = ("app_confbridge", "app_voicemail", "chan_pjsip", "pbx_config"),
                 version: str = "22.10.1", clock: Callable[[], float] = time.time,
                 challenge_source: Callable[[], str] | None = None) -> None:
        self.users = {u.username: u for u in (users if users is not None else [
            SimUser("agent", "agentsecret"),
            SimUser("limited", "limitedsecret", frozenset({"call"}), frozenset({"call"}))])}
        self.phones = {p.extension: p for p in phones}
        self.voicemail = list(voicemail)
        self.channel_counter = channel_counter
        self.time_scale = time_scale
        self.login_fail_delay = login_fail_delay
        self.autocall_context = autocall_context
        self.dialplan = {k: list(v) for k, v in (dialplan or {autocall_context: DEFAULT_AUTOCALL_CONTEXT}).items()}
        self.commands = dict(commands or {})
        self.modules = set(modules)
        self.version = version
        self.clock = clock
        self.challenge_source = challenge_source or (lambda: str(100_000_000 + secrets.randbelow(900_000_000)))
        self.rooms: dict[str, Room] = {}
        self.sessions: list[Session] = []
        self.originates: list[AmiMessage] = []  # every Originate action received, in order
        self.originate_times: list[float] = []  # clock() when each was received (benchmarks)
        self.live_uniqueids: set[str] = set()
        self.ringing: dict[str, asyncio.Event] = {}  # channel name -> set by a Hangup action
        self.half_open = False
        self.reply_delay = 0.0
        self.started_at = clock()
        self.port = 0
        self._uniq = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.room_changed = asyncio.Event()  # set on every join/leave, for tests to wait on

    # ---- lifecycle ----------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def shutdown(self) -> None:
        """`core stop gracefully`: Shutdown event to system readers, every connection closed, port closed."""
        self.broadcast("system", [("Event", "Shutdown"), ("Privilege", "system,all"), ("Shutdown", "Cleanly"),
                                  ("Restart", "False")])
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await session.writer.drain()
        self.rooms.clear()
        self.live_uniqueids.clear()
        await self.stop()

    # ---- faults -------------------------------------------------------------------------------------
    def drop_connections(self) -> None:
        for session in list(self.sessions):
            session.writer.transport.abort()
            session.closed = True

    def send_garbage(self, data: bytes) -> None:
        for session in self.sessions:
            if not session.closed:
                session.writer.write(data)

    # ---- inspection ---------------------------------------------------------------------------------
    def received_bytes(self) -> bytes:
        return b"".join(bytes(s.received) for s in self.sessions)

    def members(self, room: str) -> list[Member]:
        found = self.rooms.get(room)
        return list(found.members) if found else []

    def add_member(self, room: str, member: Member) -> None:
        """Put a member into a room without events (test setup, e.g. a participant who dialled in)."""
        self.rooms.setdefault(room, Room(room)).members.append(member)
        self.live_uniqueids.add(member.uniqueid)

    # ---- serving ------------------------------------------------------------------------------------
    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self.sessions.append(session)
        writer.write(BANNER)
        decoder = AmiDecoder(expect_banner=False)
        try:
            while not session.closed:
                data = await reader.read(65536)
                if not data:
                    break
                session.received += data
                for message in decoder.feed(data):
                    session.actions.append(message)
                    if self.half_open:
                        continue
                    if self.reply_delay:
                        await asyncio.sleep(self.reply_delay)
                    await self._handle(session, message)
                    if session.closed:
                        break
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            session.close()

    def _reply(self, session: Session, request: AmiMessage, status: str, *rest: tuple[str, str]) -> None:
        headers: list[tuple[str, str]] = [("Response", status)]
        if request.has("ActionID"):
            headers.append(("ActionID", request.action_id))
        session.send(AmiMessage((*headers, *rest)))

    def broadcast(self, privilege_class: str, headers: list[tuple[str, str]]) -> None:
        message = AmiMessage(tuple(headers))
        for session in self.sessions:
            if session.wants(privilege_class):
                session.send(message)
        self.room_changed.set()

    async def _handle(self, session: Session, msg: AmiMessage) -> None:
        action = msg.get("Action")
        if not msg.has("Action"):
            self._reply(session, msg, "Error", ("Message", "Missing action in request"))
            return
        name = action.lower()
        if name == "logoff":
            self._reply(session, msg, "Goodbye", ("Message", "Thanks for all the fish."))
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
            session.close()
            return
        if name == "challenge":
            session.challenge = self.challenge_source()
            self._reply(session, msg, "Success", ("Challenge", session.challenge))
            return
        if name == "login":
            await self._login(session, msg)
            return
        if session.user is None:
            self._reply(session, msg, "Error", ("Message", "Permission denied"))
            return
        handler = getattr(self, f"_action_{name}", None)
        if name not in ACTION_CLASSES or handler is None:
            self._reply(session, msg, "Error", ("Message", f"Invalid/unknown command: {action}. "
                                                "Use Action: ListCommands to show available commands."))
            return
        needed = ACTION_CLASSES[name]
        if needed is not None and not needed & session.user.write:
            self._reply(session, msg, "Error", ("Message", "Permission denied"))
            return
        await handler(session, msg)

    async def _login(self, session: Session, msg: AmiMessage) -> None:
        user = self.users.get(msg.get("Username"))
        ok = False
        if user is not None:
            if msg.get("AuthType").lower() == "md5":
                expected = hashlib.md5((session.challenge + user.secret).encode(), usedforsecurity=False).hexdigest()
                ok = bool(session.challenge) and secrets.compare_digest(msg.get("Key").lower(), expected)
            else:
                ok = secrets.compare_digest(msg.get("Secret"), user.secret)
        if not ok or user is None:
            await asyncio.sleep(self.login_fail_delay * self.time_scale)
            self._reply(session, msg, "Error", ("Message", "Authentication failed"))
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
            session.close()
            return
        session.user = user
        events = msg.get("Events", "on").lower()
        if events in ("on", "yes", "true", "1"):
            session.events = user.read
        elif events in ("off", "no", "false", "0"):
            session.events = frozenset()
        else:
            session.events = frozenset(e.strip() for e in events.split(",")) & user.read
        self._reply(session, msg, "Success", ("Message", "Authentication accepted"))
        if session.wants("system"):
            uptime = str(int(self.clock() - self.started_at))
            session.send(AmiMessage.of(("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", uptime),
                                       ("LastReload", uptime), ("Status", "Fully Booted")))

    # ---- simple actions -----------------------------------------------------------------------------
    async def _action_ping(self, session: Session, msg: AmiMessage) -> None:
        self._reply(session, msg, "Success", ("Ping", "Pong"), ("Timestamp", f"{self.clock():.6f}"))

    async def _action_coresettings(self, session: Session, msg: AmiMessage) -> None:
        self._reply(session, msg, "Success", ("AMIversion", "11.0.0"), ("AsteriskVersion", self.version),
                    ("SystemName", ""), ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"),
                    ("CoreRunUser", ""), ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"),
                    ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
                    ("SoundsSearchCustomDir", "No"))

    async def _action_corestatus(self, session: Session, msg: AmiMessage) -> None:
        started = time.gmtime(self.started_at)
        live = sum(len(r.members) for r in self.rooms.values())
        self._reply(session, msg, "Success", ("CoreStartupDate", time.strftime("%Y-%m-%d", started)),
                    ("CoreStartupTime", time.strftime("%H:%M:%S", started)),
                    ("CoreReloadDate", time.strftime("%Y-%m-%d", started)),
                    ("CoreReloadTime", time.strftime("%H:%M:%S", started)),
                    ("CoreCurrentCalls", str(live)), ("CoreProcessedCalls", str(self._uniq // 2)))

    async def _action_modulecheck(self, session: Session, msg: AmiMessage) -> None:
        module = msg.get("Module").removesuffix(".so")
        if module in self.modules:
            self._reply(session, msg, "Success", ("Version", ""))
        else:
            self._reply(session, msg, "Error", ("Message", "Module not loaded"))

    async def _action_command(self, session: Session, msg: AmiMessage) -> None:
        command = msg.get("Command").strip()
        lines = self.commands.get(command)
        if lines is None and command == "core show version":
            lines = [f"Asterisk {self.version} built by pbxsync simulator"]
        if lines is None:
            words = " ".join(command.split()[:2])
            self._reply(session, msg, "Error", ("Message", "Command output follows"),
                        ("Output", f"No such command '{command}' (type 'core show help {words}' "
                                   "for other possible commands)"))
            return
        self._reply(session, msg, "Success", ("Message", "Command output follows"),
                    *[("Output", line) for line in lines])

    def _list_start(self, session: Session, msg: AmiMessage, text: str) -> None:
        self._reply(session, msg, "Success", ("EventList", "start"), ("Message", text))

    def _list_item(self, session: Session, msg: AmiMessage, event: str, *rest: tuple[str, str]) -> None:
        session.send(AmiMessage((("Event", event), ("ActionID", msg.action_id), *rest)))

    def _list_end(self, session: Session, msg: AmiMessage, event: str, count: int,
                  *rest: tuple[str, str]) -> None:
        session.send(AmiMessage((("Event", event), ("ActionID", msg.action_id), ("EventList", "Complete"),
                                 ("ListItems", str(count)), *rest)))

    async def _action_voicemailuserslist(self, session: Session, msg: AmiMessage) -> None:
        self._list_start(session, msg, "Voicemail user list will follow")
        for vm in self.voicemail:
            self._list_item(
                session, msg, "VoicemailUserEntry", ("VMContext", vm.context), ("VoiceMailbox", vm.mailbox),
                ("Fullname", vm.fullname), ("Email", vm.email), ("Pager", ""), ("ServerEmail", "asterisk"),
                ("FromString", ""), ("MailCommand", "/usr/sbin/sendmail -t"), ("Language", ""), ("TimeZone", ""),
                ("Callback", ""), ("Dialout", ""), ("UniqueID", ""), ("ExitContext", ""),
                ("SayDurationMinimum", "2"), ("SayEnvelope", "Yes"), ("SayCID", "No"), ("AttachMessage", "Yes"),
                ("AttachmentFormat", ""), ("DeleteMessage", "No"), ("VolumeGain", "0.00"), ("CanReview", "No"),
                ("CanMarkUrgent", "Yes"), ("CallOperator", "No"), ("MaxMessageCount", "100"),
                ("MaxMessageLength", "0"), ("NewMessageCount", "0"), ("OldMessageCount", "0"))
        self._list_end(session, msg, "VoicemailUserEntryComplete", len(self.voicemail))

    async def _action_showdialplan(self, session: Session, msg: AmiMessage) -> None:
        context = msg.get("Context")
        if context not in self.dialplan:
            self._reply(session, msg, "Error", ("Message", f"Did not find context {context}"))
            return
        rows = self.dialplan[context]
        self._list_start(session, msg, "DialPlan list will follow")
        for exten, priority, app, data in rows:
            self._list_item(session, msg, "ListDialplan", ("Context", context), ("Extension", exten),
                            ("Priority", priority), ("Application", app), ("AppData", data),
                            ("Registrar", "pbx_config"))
        self._list_end(session, msg, "ShowDialPlanComplete", len(rows),
                       ("ListExtensions", str(len({r[0] for r in rows}))), ("ListPriorities", str(len(rows))),
                       ("ListContexts", "1"))

    # ---- conferences --------------------------------------------------------------------------------
    def _room_or_error(self, session: Session, msg: AmiMessage) -> Room | None:
        name = msg.get("Conference")
        if not self.rooms:
            self._reply(session, msg, "Error", ("Message", "No active conferences."))
            return None
        room = self.rooms.get(name)
        if room is None:
            self._reply(session, msg, "Error", ("Message", "No Conference by that name found."))
        return room

    async def _action_confbridgelist(self, session: Session, msg: AmiMessage) -> None:
        if not msg.get("Conference"):
            self._reply(session, msg, "Error", ("Message", "No Conference name provided."))
            return
        room = self.rooms.get(msg.get("Conference"))
        if room is None:
            self._reply(session, msg, "Error", ("Message", "No Conference by that name found."))
            return
        self._list_start(session, msg, "Confbridge user list will follow")
        yes_no = {True: "Yes", False: "No"}
        for m in room.members:
            answered = str(int((time.monotonic() - m.joined_at) / max(self.time_scale, 1e-9)))
            self._list_item(session, msg, "ConfbridgeList", ("Conference", room.name), ("Admin", yes_no[m.admin]),
                            ("MarkedUser", yes_no[m.marked]), ("WaitMarked", "No"), ("EndMarked", "No"),
                            ("EndMarkedAny", "No"), ("Waiting", "No"), ("Muted", "No"), ("Talking", "No"),
                            ("AnsweredTime", answered), *m.snapshot())
        self._list_end(session, msg, "ConfbridgeListComplete", len(room.members))

    async def _action_confbridgelistrooms(self, session: Session, msg: AmiMessage) -> None:
        if not self.rooms:
            self._reply(session, msg, "Error", ("Message", "No active conferences."))
            return
        self._list_start(session, msg, "Confbridge conferences will follow")
        for room in self.rooms.values():
            self._list_item(session, msg, "ConfbridgeListRooms", ("Conference", room.name),
                            ("Parties", str(len(room.members))), ("Marked", str(sum(m.marked for m in room.members))),
                            ("Locked", "Yes" if room.locked else "No"), ("Muted", "No"))
        self._list_end(session, msg, "ConfbridgeListRoomsComplete", len(self.rooms))

    async def _action_confbridgelock(self, session: Session, msg: AmiMessage) -> None:
        room = self._room_or_error(session, msg)
        if room is not None:
            room.locked = True
            self._reply(session, msg, "Success", ("Message", "Conference locked"))

    async def _action_confbridgeunlock(self, session: Session, msg: AmiMessage) -> None:
        room = self._room_or_error(session, msg)
        if room is not None:
            room.locked = False
            self._reply(session, msg, "Success", ("Message", "Conference unlocked"))

    async def _action_confbridgekick(self, session: Session, msg: AmiMessage) -> None:
        room = self._room_or_error(session, msg)
        if room is None:
            return
        channel = msg.get("Channel")
        if channel == "all":
            leaving = list(room.members)
            self._reply(session, msg, "Success", ("Message", "All participants kicked"))
        else:
            leaving = [m for m in room.members if m.channel == channel]
            if not leaving:
                self._reply(session, msg, "Error", ("Message", "No Channel by that name found in Conference."))
                return
            self._reply(session, msg, "Success", ("Message", "User kicked"))
        self._spawn(self._leave(room, leaving))

    async def _action_hangup(self, session: Session, msg: AmiMessage) -> None:
        channel = msg.get("Channel")
        hung_up = self.ringing.get(channel)
        if hung_up is not None:
            self._reply(session, msg, "Success", ("Message", "Channel Hungup"))
            hung_up.set()
            return
        for room in self.rooms.values():
            found = [m for m in room.members if m.channel == channel]
            if found:
                self._reply(session, msg, "Success", ("Message", "Channel Hungup"))
                self._spawn(self._leave(room, found))
                return
        self._reply(session, msg, "Error", ("Message", "No such channel"))

    async def _leave(self, room: Room, leaving: list[Member]) -> None:
        await asyncio.sleep(0)  # the Response goes out first; Leave/End follow asynchronously (22)
        channels = 1 + len(room.members)
        for member in leaving:
            self.broadcast("call", [("Event", "ConfbridgeLeave"), ("Privilege", "call,all"),
                                    *room.bridge(channels), *member.snapshot(),
                                    ("Admin", "Yes" if member.admin else "No")])
        for member in leaving:
            if member in room.members:
                room.members.remove(member)
            self.live_uniqueids.discard(member.uniqueid)
            self._channel_event("Hangup", member.channel, member.uniqueid, 6, member.context, member.exten,
                                (("Cause", "16"), ("Cause-txt", "Normal Clearing")))
        if not room.members:
            self.broadcast("call", [("Event", "ConfbridgeEnd"), ("Privilege", "call,all"), *room.bridge(1)])
            self.rooms.pop(room.name, None)

    def _channel_event(self, name: str, channel: str, uniqueid: str, state: int, context: str, exten: str,
                       extra: Iterable[tuple[str, str]] = ()) -> None:
        """Newchannel / Hangup with the fields Asterisk 22 sends (transcripts 11-13)."""
        states = {0: "Down", 5: "Ringing", 6: "Up"}
        self.broadcast("call", [("Event", name), ("Privilege", "call,all"), ("Channel", channel),
                                ("ChannelState", str(state)), ("ChannelStateDesc", states.get(state, "Down")),
                                ("CallerIDNum", "<unknown>"), ("CallerIDName", "<unknown>"),
                                ("ConnectedLineNum", "<unknown>"), ("ConnectedLineName", "<unknown>"),
                                ("Language", "en"), ("AccountCode", ""), ("Context", context), ("Exten", exten),
                                ("Priority", "1"), ("Uniqueid", uniqueid), ("Linkedid", uniqueid), *extra])

    async def _hang_up_later(self, channel: str, uniqueid: str, context: str, exten: str) -> None:
        await asyncio.sleep(0)  # after the OriginateResponse
        self.live_uniqueids.discard(uniqueid)
        self._channel_event("Hangup", channel, uniqueid, 6, context, exten,
                            (("Cause", "16"), ("Cause-txt", "Normal Clearing")))

    async def join(self, room_name: str, member: Member) -> None:
        room = self.rooms.get(room_name)
        if room is None:
            room = self.rooms[room_name] = Room(room_name)
            self.channel_counter += 1  # ConfBridge's announcer channel takes a number too
            self.broadcast("call", [("Event", "ConfbridgeStart"), ("Privilege", "call,all"), *room.bridge(1)])
        room.members.append(member)
        self.broadcast("call", [("Event", "ConfbridgeJoin"), ("Privilege", "call,all"),
                                *room.bridge(1 + len(room.members)), *member.snapshot(),
                                ("Admin", "Yes" if member.admin else "No"), ("Muted", "No")])

    # ---- originate ----------------------------------------------------------------------------------
    def _new_uniqueid(self) -> str:
        value = f"{int(self.started_at)}.{self._uniq}"
        self._uniq += 1
        return value

    async def _action_originate(self, session: Session, msg: AmiMessage) -> None:
        self.originates.append(msg)
        self.originate_times.append(self.clock())
        if not msg.get("Channel"):  # manager.c action_originate checks this first, before Async
            self._reply(session, msg, "Error", ("Message", "Channel not specified"))
            return
        if msg.get("Async").lower() in ("true", "yes", "1"):
            self._reply(session, msg, "Success", ("Message", "Originate successfully queued"))
            self._spawn(self._run_call(msg))
            return
        response, join = await self._place_call(msg)  # synchronous: the session blocks (14b)
        if response.get("Response") == "Success":
            self._reply(session, msg, "Success", ("Message", "Originate successfully queued"))
        else:
            self._reply(session, msg, "Error", ("Message", "Originate failed"))
        if join is not None:
            await self.join(*join)

    async def _run_call(self, msg: AmiMessage) -> None:
        response, join = await self._place_call(msg)
        self.broadcast("call", list(response.headers))  # to every session reading `call` (29a)
        if join is not None:
            await self.join(*join)

    async def _place_call(self, msg: AmiMessage) -> tuple[AmiMessage, tuple[str, Member] | None]:
        dial = msg.get("Channel")
        tech_resource = dial.partition("/")[2]
        extension = tech_resource.split("@", 1)[0]
        phone = self.phones.get(extension, Phone(extension, PhoneBehaviour.UNKNOWN))
        counter = self.channel_counter
        self.channel_counter += 1
        channel_id = msg.get("ChannelId")
        duplicate = bool(channel_id) and channel_id in self.live_uniqueids
        variables = dict(v.partition("=")[::2] for v in msg.get_all("Variable"))
        caller = msg.get("CallerID")
        caller_name, _, caller_num = caller.partition("<")
        caller_name, caller_num = caller_name.strip(), caller_num.rstrip(">").strip()
        target: list[tuple[str, str]]
        if msg.has("Application"):
            target = [("Application", msg.get("Application")), ("Data", msg.get("Data"))]
        else:
            target = [("Context", msg.get("Context")), ("Exten", msg.get("Exten"))]

        def result(status: str, reason: int, channel: str, uniqueid: str) -> AmiMessage:
            head: list[tuple[str, str]] = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
            if msg.has("ActionID"):
                head.append(("ActionID", msg.action_id))
            return AmiMessage((*head, ("Response", status), ("Channel", channel), *target, ("Reason", str(reason)),
                               ("Uniqueid", uniqueid), ("CallerIDNum", caller_num or "<unknown>"),
                               ("CallerIDName", caller_name or "<unknown>")))

        behaviour = PhoneBehaviour.UNKNOWN if duplicate else phone.behaviour
        if behaviour is PhoneBehaviour.UNKNOWN:
            return result("Failure", REASON_FAILED, dial, "<unknown>"), None
        channel = f"{dial}-{counter:08x};1"
        uniqueid = channel_id or self._new_uniqueid()
        if not channel_id:
            self._new_uniqueid()  # the ;2 half takes the next one
        where = dial.partition("@")[2] or "default", extension
        self._channel_event("Newchannel", channel, uniqueid, 0, *where)
        ring = phone.answer_delay
        if behaviour is PhoneBehaviour.NO_ANSWER:
            ring = int(msg.get("Timeout") or "30000") / 1000
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
            return result("Failure", reason, dial, uniqueid if hung_up.is_set() else "<unknown>"), None
        self.live_uniqueids.add(uniqueid)
        response = result("Success", REASON_ANSWERED, channel, uniqueid)
        room_name = ""
        context, exten, priority = msg.get("Context"), msg.get("Exten"), ""
        if msg.get("Application").lower() == "confbridge":
            room_name = msg.get("Data").split(",")[0]
            context, exten, priority = dial.partition("@")[2] or "default", extension, "1"
        elif msg.get("Context") == self.autocall_context:
            room_name = variables.get("PBXSYNC_ROOM", "")
            priority = next((p for _, p, app, _ in self.dialplan.get(context, []) if app == "ConfBridge"), "1")
            if variables.get("PBXSYNC_CONFIRM") == "1" and not phone.presses_confirm:
                room_name = ""
        if not room_name:  # declined or nowhere to go: the dialplan hangs up
            self._spawn(self._hang_up_later(channel, uniqueid, context, exten))
            return response, None
        host = variables.get("PBXSYNC_ROLE") == "host"
        member = Member(channel, uniqueid, caller_num or "<unknown>", caller_name or "<unknown>", context, exten,
                        priority, admin=host, marked=host)
        return response, (room_name, member)


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
