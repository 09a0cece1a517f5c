"""A simulated Asterisk 22 manager interface (AMI) on asyncio, for tests, benchmarks and `pbxsync demo`.

Faithful to real Asterisk 22 transcripts (tests/unit/test_ami_simulator_transcripts.py replays them):
banner without a blank line, CRLF, `Response` then `ActionID` then the rest, EventList framing, error texts
verbatim, ~1 s delay then close after a failed login, "Permission denied" before login and for missing
write classes, OriginateResponse (to every session reading `call`) before ConfbridgeStart/Join.

It models what pbxsync uses: Login (plain and MD5 challenge), Logoff, Ping, Originate (async and
synchronous) to scripted phones, ConfBridge rooms (List, ListRooms, Kick, Lock, Unlock, Join/Leave/End
events), Hangup of a member, VoicemailUsersList, CoreSettings, CoreStatus, ModuleCheck, ShowDialPlan,
ExtensionStateList (the dialplan's "hint" rows), Setvar/Getvar, Command and Shutdown. Of the channel-level
events only Newchannel and Hangup are produced, and only for the originated channel that carries the
Originate's ChannelId (Asterisk also reports a Local channel's ;2 half, VarSet, Dial*, ...); a ringing call
can be hung up (Hangup action: OriginateResponse Failure, Reason 0, with the ChannelId as Uniqueid, as
Asterisk 22 answers).

Three parts: this module is the manager session (TCP listener, banner, login, action dispatch, event
fan-out to the sessions that read each class); `sim_actions` answers each action; `sim_world` is the
simulated PBX itself (phones, channels, rooms, voicemail users, how an Originate ends).

Faults for tests: `drop_connections()`, `half_open` (keep reading, never answer), `reply_delay`,
`send_garbage()`. Every byte each session received is kept in `Session.received`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pbxsync.plugin.ami.sim_actions import ACTIONS, ActionCall
from pbxsync.plugin.ami.sim_world import (
    DEFAULT_AUTOCALL_CONTEXT,
    Member,
    Phone,
    PhoneBehaviour,
    Room,
    VoicemailUser,
    World,
    load_phones,
)
from pbxsync.plugin.ami.wire import AmiDecoder, AmiMessage

__all__ = [
    "ALL_CLASSES", "BANNER", "DEFAULT_AUTOCALL_CONTEXT", "AsteriskSimulator", "Member", "Phone", "PhoneBehaviour",
    "Room", "Session", "SimUser", "VoicemailUser", "World", "load_phones",
]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
ALL_CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                         "reporting", "cdr", "dialplan", "originate", "agi"})


@dataclass(frozen=True)
class SimUser:
    username: str
    secret: str
    read: frozenset[str] = ALL_CLASSES
    write: frozenset[str] = ALL_CLASSES


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
        self.world = World(phones=phones, voicemail=voicemail, channel_counter=channel_counter,
                           time_scale=time_scale, autocall_context=autocall_context, dialplan=dialplan,
                           commands=commands, modules=modules, version=version, clock=clock)
        self.world.emit = self.broadcast
        self.users = {u.username: u for u in (users if users is not None else [
            SimUser("agent", "agentsecret"),
            SimUser("limited", "limitedsecret", frozenset({"call"}), frozenset({"call"}))])}
        self.login_fail_delay = login_fail_delay
        self.challenge_source = challenge_source or (lambda: str(100_000_000 + secrets.randbelow(900_000_000)))
        self.sessions: list[Session] = []
        self.originates: list[AmiMessage] = []  # every Originate action received, in order
        self.originate_times: list[float] = []  # clock() when each was received (benchmarks)
        self.half_open = False
        self.reply_delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self.room_changed = asyncio.Event()  # set on every event broadcast (joins, leaves, ...), for tests

    # ---- the world, as tests look at it -------------------------------------------------------------
    @property
    def phones(self) -> dict[str, Phone]:
        return self.world.phones

    @property
    def voicemail(self) -> list[VoicemailUser]:
        return self.world.voicemail

    @property
    def rooms(self) -> dict[str, Room]:
        return self.world.rooms

    @property
    def ringing(self) -> dict[str, asyncio.Event]:
        return self.world.ringing

    @property
    def channel_counter(self) -> int:
        return self.world.channel_counter

    def members(self, room: str) -> list[Member]:
        return self.world.members(room)

    def add_member(self, room: str, member: Member) -> None:
        """Put a member into a room without events (test setup, e.g. a participant who dialled in)."""
        self.world.add_member(room, member)

    def received_bytes(self) -> bytes:
        return b"".join(bytes(s.received) for s in self.sessions)

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
        self.world.cancel_tasks()
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
        self.world.end_all_calls()
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

    # ---- serving ------------------------------------------------------------------------------------
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

    def broadcast(self, privilege_class: str, headers: list[tuple[str, str]]) -> None:
        """An event to every session whose user reads `privilege_class` and asked for it."""
        message = AmiMessage(tuple(headers))
        for session in self.sessions:
            if session.wants(privilege_class):
                session.send(message)
        self.room_changed.set()

    async def _handle(self, session: Session, msg: AmiMessage) -> None:
        call = ActionCall(msg, session.send)
        action = msg.get("Action")
        if not msg.has("Action"):
            call.reply("Error", ("Message", "Missing action in request"))
            return
        name = action.lower()
        if name == "logoff":
            call.reply("Goodbye", ("Message", "Thanks for all the fish."))
            with contextlib.suppress(ConnectionError):
                await session.writer.drain()
            session.close()
            return
        if name == "challenge":
            session.challenge = self.challenge_source()
            call.reply("Success", ("Challenge", session.challenge))
            return
        if name == "login":
            await self._login(session, call)
            return
        if session.user is None:
            call.reply("Error", ("Message", "Permission denied"))
            return
        known = ACTIONS.get(name)
        if known is None:
            call.reply("Error", ("Message", f"Invalid/unknown command: {action}. "
                                 "Use Action: ListCommands to show available commands."))
            return
        if known.classes is not None and not known.classes & session.user.write:
            call.reply("Error", ("Message", "Permission denied"))
            return
        if name == "originate":  # what the PBX was asked to dial, for tests and benchmarks
            self.originates.append(msg)
            self.originate_times.append(self.world.clock())
        await known.handler(self.world, call)

    async def _login(self, session: Session, call: ActionCall) -> None:
        msg = call.request
        user = self.users.get(msg.get("Username"))
        ok = False
        if user is not None:
            if msg.get("AuthType").lower() == "md5":
                expected = hashlib.md5((session.challenge + user.secret).encode(), usedforsecurity=False).hexdigest()
                ok = bool(session.challenge) and secrets.compare_digest(msg.get("Key").lower(), expected)
            else:
                ok = secrets.compare_digest(msg.get("Secret"), user.secret)
        if not ok or user is None:
            await asyncio.sleep(self.login_fail_delay * self.world.time_scale)
            call.reply("Error", ("Message", "Authentication failed"))
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
        call.reply("Success", ("Message", "Authentication accepted"))
        if session.wants("system"):
            uptime = str(int(self.world.clock() - self.world.started_at))
            session.send(AmiMessage.of(("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", uptime),
                                       ("LastReload", uptime), ("Status", "Fully Booted")))
