"""The AMI link: one logged-in session to Asterisk that reconnects, answers every action or times out,
and never dials anyone twice.

This is a small asyncio client of our own rather than panoramisk's `Manager`/`AMIProtocol`, because each
part of panoramisk 1.4 on our path is one of the defects DESIGN.md lists, and overriding them all would
leave nothing of it (see tests/unit/test_ami_panoramisk_defects.py, which pins each one):
- `actions.Action.multi` reads `self['async']`, a KeyError for an Originate without `Async` that kills
  `data_received` (panoramisk/actions.py, `multi`); `Action.__str__` sorts headers and never checks values.
- `AMIProtocol.handle_message` gives an `OriginateResponse` event to the waiting action instead of the
  event callbacks, and only when that session sent it; every session sees every OriginateResponse (29a).
- `AMIProtocol.data_received` decodes each chunk alone with errors="ignore" (split UTF-8 is dropped).
- `Manager.ping` sends Ping and never checks for a Pong; `send_action` futures have no timeout.
- `AMIProtocol.close` queues unanswered actions into `awaiting_actions`, which `send_awaiting_actions`
  re-sends after the next FullyBooted: an Originate in flight during a reconnect is dialled twice.
Deviations from panoramisk's behaviour, on purpose: actions are never replayed (their futures fail with
PbxError), every action carries our own unique ActionID, Originate always carries `Async: true` and a
ChannelId, headers keep the order given, `Events: on` is always requested (with `off` no OriginateResponse
arrives, transcript 27), and an `Error` response raises instead of resolving as a normal message.

Over 400 lines on purpose: every action, the Originate bookkeeping, the watchdog and the reconnect loop share
one connection state (pending actions, the writer, the login); split, they would pass it around.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets as pysecrets
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from pbxsync.plugin.ami.wire import (
    AmiDecoder,
    AmiMessage,
    encode_action,
    validate_channel_id,
    validate_dial_string,
    variable_headers,
)
from pbxsync.sync.config import PbxConfig
from pbxsync.sync.errors import AmiPermissionError, AmiRefusedError, AmiTimeoutError, PbxError, ValidationError
from pbxsync.sync.secrets import Secret

log = logging.getLogger("pbxsync.ami")
T = TypeVar("T")

# Which manager.conf write class each action needs (Asterisk 22 registrations). Shown to the operator.
PERMISSION_CLASS = {
    "originate": "originate",
    "confbridgelist": "reporting",
    "confbridgelistrooms": "reporting",
    "confbridgekick": "call",
    "confbridgelock": "call",
    "confbridgemute": "call",
    "confbridgeunmute": "call",
    "confbridgeunlock": "call",
    "hangup": "call",
    "voicemailuserslist": "call",
    "coresettings": "system",
    "corestatus": "system",
    "modulecheck": "system",
    "showdialplan": "reporting",
    "command": "command",
    "setvar": "call",  # presence: DEVICE_STATE / PRESENCE_STATE
    "getvar": "call",
}


class OriginateOutcome(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the link dropped (or no event came) after the Originate may have been sent


_REASONS = {4: OriginateOutcome.ANSWERED, 5: OriginateOutcome.BUSY, 3: OriginateOutcome.NO_ANSWER,
            8: OriginateOutcome.CONGESTION, 0: OriginateOutcome.FAILED, 1: OriginateOutcome.FAILED}


def outcome_for_reason(reason: str) -> OriginateOutcome:
    """AMI OriginateResponse Reason -> outcome (4 answered, 5 busy, 3 no answer, 8 congestion, else failed)."""
    try:
        return _REASONS.get(int(reason), OriginateOutcome.FAILED)
    except ValueError:
        return OriginateOutcome.FAILED


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pbxsync"
    secret: Secret = field(default_factory=lambda: Secret(""))
    tls: bool = False
    tls_verify: bool = True
    md5_login: bool = False
    action_timeout: float = 10.0
    ping_interval: float = 20.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    @classmethod
    def from_config(cls, pbx: PbxConfig) -> AmiSettings:
        return cls(host=pbx.host, port=pbx.port, username=pbx.username, secret=pbx.secret, tls=pbx.tls,
                   tls_verify=pbx.tls_verify, md5_login=pbx.md5_login,
                   action_timeout=pbx.action_timeout_seconds, ping_interval=pbx.ping_interval_seconds)


@dataclass(frozen=True)
class OriginateRequest:
    channel: str  # a dial string from render_dial()
    channel_id: str  # becomes the channel's Uniqueid; Asterisk refuses a second live channel with it
    context: str
    exten: str = "s"
    priority: int = 1
    variables: tuple[tuple[str, str], ...] = ()
    caller_id: str = ""
    timeout_ms: int = 30_000


@dataclass(frozen=True)
class OriginateResult:
    action_id: str
    channel_id: str
    outcome: OriginateOutcome
    reason: str = ""
    channel: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AmiHealth:
    connected: bool
    banner: str
    reconnects: int
    last_error: str
    seconds_since_last_data: float | None


EventCallback = Callable[[AmiMessage], None]


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[AmiMessage]
    is_list: bool = False
    started: AmiMessage | None = None
    items: list[AmiMessage] = field(default_factory=list)
    list_future: asyncio.Future[list[AmiMessage]] | None = None


def permission_error(action: str, username: str) -> AmiPermissionError:
    needed = PERMISSION_CLASS.get(action.lower(), "the matching")
    return AmiPermissionError(
        f"AMI user '{username}' is not allowed to run {action}: add '{needed}' to write= in its "
        "manager.conf section (pbxsync needs read=call,system and write=originate,call,reporting)")


class AmiClient:
    """A supervised AMI session. `start()` returns at once; the link (re)connects in the background."""

    def __init__(self, settings: AmiSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._token = pysecrets.token_hex(4)
        self._counter = 0
        self._pending: dict[str, _Pending] = {}
        self._originates: dict[str, asyncio.Future[AmiMessage]] = {}
        self._subscribers: list[tuple[frozenset[str] | None, EventCallback]] = []
        self._on_connect: list[Callable[[], None]] = []
        self._on_disconnect: list[Callable[[], None]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._banner = ""
        self._reconnects = 0
        self._last_error = ""
        self._last_rx: float | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name="ami-link")

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self._connected.is_set():
            with contextlib.suppress(PbxError, ValidationError):
                await self.action("Logoff", within=min(1.0, self.settings.action_timeout), ok=("Goodbye",))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, within: float | None = None) -> bool:
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def health(self) -> AmiHealth:
        age = None if self._last_rx is None else max(0.0, self._clock() - self._last_rx)
        return AmiHealth(self.connected, self._banner, self._reconnects, self._last_error, age)

    def subscribe(self, events: Iterable[str] | None, callback: EventCallback) -> Callable[[], None]:
        """Call `callback` for each event named in `events` (case-insensitive; None = all events)."""
        entry = (None if events is None else frozenset(e.lower() for e in events), callback)
        self._subscribers.append(entry)
        return lambda: self._subscribers.remove(entry) if entry in self._subscribers else None

    def on_connect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run after every successful login (used to re-read room membership after a reconnect).

        Returns a function that removes the callback again."""
        self._on_connect.append(callback)
        return lambda: self._on_connect.remove(callback) if callback in self._on_connect else None

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run when a logged-in link ends (dropped, timed out, stopped), so state follows it at once."""
        self._on_disconnect.append(callback)
        return lambda: self._on_disconnect.remove(callback) if callback in self._on_disconnect else None

    def _run_callbacks(self, callbacks: list[Callable[[], None]], which: str) -> None:
        for callback in list(callbacks):
            try:
                callback()
            except Exception:  # one part's bug must not take the link down
                log.exception("AMI %s callback failed", which)

    def drop_link(self) -> None:
        """Close the current TCP connection (the supervisor reconnects). Used by the watchdog and tests."""
        if self._writer is not None:
            self._writer.close()

    # ---- actions ------------------------------------------------------------------------------------
    def new_action_id(self) -> str:
        self._counter += 1
        return f"pbxsync-{self._token}-{self._counter}"

    async def action(self, name: str, headers: Sequence[tuple[str, str]] = (), *,
                     within: float | None = None, ok: Sequence[str] = ("Success",)) -> AmiMessage:
        """Send one action and return its response; an Error response raises (Permission -> AmiPermissionError)."""
        response = await self._request(name, headers, within=within)
        return self._check(name, response, ok)

    async def list_action(self, name: str, headers: Sequence[tuple[str, str]] = (), *,
                          within: float | None = None,
                          empty_when: Sequence[str] = ()) -> list[AmiMessage]:
        """An EventList action: the item events between `EventList: start` and the `...Complete` event.

        An Error whose Message is in `empty_when` (e.g. "No active conferences.") means an empty list.
        """
        aid = self.new_action_id()
        data = encode_action(name, [*headers, ("ActionID", aid)])
        loop = asyncio.get_running_loop()
        pending = _Pending(name, loop.create_future(), is_list=True, list_future=loop.create_future())
        wait = within if within is not None else self.settings.action_timeout
        self._write(aid, pending, data)
        try:
            first = await self._await(name, pending.future, wait)
            if first.name != "Success":
                if first.get("Message") in empty_when:
                    return []
                self._check(name, first, ("Success",))
            assert pending.list_future is not None
            return await self._await(name, pending.list_future, wait)
        finally:
            self._pending.pop(aid, None)

    async def ping(self, within: float | None = None) -> AmiMessage:
        return await self.action("Ping", within=within)

    async def originate(self, request: OriginateRequest, *, result_timeout: float | None = None) -> OriginateResult:
        """Queue an asynchronous Originate and wait for its OriginateResponse event.

        Raises (nothing was dialled): ValidationError, AmiPermissionError, PbxError when the link is down
        or Asterisk refused the action. Returns an UNKNOWN outcome when the link drops after the bytes
        may have left: the Originate is never sent again by this client.
        """
        validate_dial_string(request.channel)
        validate_channel_id(request.channel_id)
        aid = self.new_action_id()
        headers: list[tuple[str, str]] = [
            ("Channel", request.channel), ("Context", request.context), ("Exten", request.exten),
            ("Priority", str(request.priority)), *variable_headers(request.variables)]
        if request.caller_id:
            headers.append(("CallerID", request.caller_id))
        headers += [("Timeout", str(request.timeout_ms)), ("ChannelId", request.channel_id),
                    ("OtherChannelId", other_channel_id(request.channel_id)), ("Async", "true")]
        data = encode_action("Originate", [*headers, ("ActionID", aid)])
        loop = asyncio.get_running_loop()
        event_future: asyncio.Future[AmiMessage] = loop.create_future()
        pending = _Pending("Originate", loop.create_future())
        self._originates[aid] = event_future
        try:
            self._write(aid, pending, data)
            try:
                response = await self._await("Originate", pending.future, self.settings.action_timeout)
            except (AmiTimeoutError, PbxError) as exc:
                return OriginateResult(aid, request.channel_id, OriginateOutcome.UNKNOWN, detail=str(exc))
            finally:
                self._pending.pop(aid, None)
            self._check("Originate", response, ("Success",))
            wait = result_timeout if result_timeout is not None else (
                request.timeout_ms / 1000 + self.settings.action_timeout)
            try:
                event = await self._await("Originate", event_future, wait)
            except (AmiTimeoutError, PbxError) as exc:
                return OriginateResult(aid, request.channel_id, OriginateOutcome.UNKNOWN, detail=str(exc))
            reason = event.get("Reason")
            return OriginateResult(aid, request.channel_id, outcome_for_reason(reason), reason,
                                   event.get("Channel"), event.get("Response"))
        finally:
            self._originates.pop(aid, None)

    # ---- conference helpers -------------------------------------------------------------------------
    async def confbridge_list(self, room: str) -> list[AmiMessage]:
        return await self.list_action("ConfbridgeList", [("Conference", room)],
                                      empty_when=("No Conference by that name found.", "No active conferences."))

    async def confbridge_list_rooms(self) -> list[AmiMessage]:
        return await self.list_action("ConfbridgeListRooms", empty_when=("No active conferences.",))

    async def confbridge_kick(self, room: str, channel: str = "all") -> bool:
        """Kick one channel or everybody; False when the room (or channel) is not there."""
        try:
            await self.action("ConfbridgeKick", [("Conference", room), ("Channel", channel)])
        except AmiPermissionError:
            raise
        except PbxError as exc:
            if "No " in str(exc):
                return False
            raise
        return True

    async def hangup(self, channel: str, cause: int = 16) -> bool:
        """Hang up one channel by its exact name (cause 16: normal clearing); False when it is gone."""
        if not channel or channel.startswith("/"):  # Asterisk reads /.../ as a regular expression
            raise ValidationError(f"not a channel name: {channel[:80]!r}")
        try:
            await self.action("Hangup", [("Channel", channel), ("Cause", str(cause))])
        except AmiPermissionError:
            raise
        except PbxError as exc:
            if "No such channel" in str(exc):
                return False
            raise
        return True

    async def voicemail_users(self) -> list[AmiMessage]:
        return await self.list_action("VoicemailUsersList")

    # ---- internals ----------------------------------------------------------------------------------
    def _check(self, name: str, response: AmiMessage, ok: Sequence[str]) -> AmiMessage:
        if response.name in ok:
            return response
        message = response.get("Message")
        if message == "Permission denied":
            raise permission_error(name, self.settings.username)
        raise AmiRefusedError(f"AMI {name} failed: {message or response.name}")

    def _write(self, aid: str, pending: _Pending, data: bytes) -> None:
        if self._writer is None or (not self._connected.is_set() and pending.action not in _LOGIN_ACTIONS):
            raise PbxError(f"AMI link to {self.settings.host}:{self.settings.port} is down; {pending.action} not sent")
        self._pending[aid] = pending
        self._writer.write(data)

    async def _request(self, name: str, headers: Sequence[tuple[str, str]], *,
                       within: float | None = None) -> AmiMessage:
        aid = self.new_action_id()
        data = encode_action(name, [*headers, ("ActionID", aid)])
        pending = _Pending(name, asyncio.get_running_loop().create_future())
        self._write(aid, pending, data)
        try:
            return await self._await(name, pending.future, within if within is not None
                                     else self.settings.action_timeout)
        finally:
            self._pending.pop(aid, None)

    async def _await(self, name: str, future: asyncio.Future[T], within: float) -> T:
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) swallows a cancel that races the result
            async with asyncio.timeout(within):
                return await asyncio.shield(future)
        except TimeoutError:
            raise AmiTimeoutError(f"AMI {name} got no answer within {within:g} s") from None

    def _dispatch(self, message: AmiMessage) -> None:
        aid = message.action_id
        if message.is_response:
            pending = self._pending.get(aid)
            if pending is not None and not pending.future.done():
                pending.future.set_result(message)
            return
        if not message.is_event:
            return
        pending = self._pending.get(aid) if aid else None
        if pending is not None and pending.is_list and pending.list_future is not None:
            if message.get("EventList").lower() == "complete":
                if not pending.list_future.done():
                    pending.list_future.set_result(pending.items)
            else:
                pending.items.append(message)
            return
        if message.name == "OriginateResponse":
            waiter = self._originates.get(aid)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        lowered = message.name.lower()
        for names, callback in list(self._subscribers):
            if names is None or lowered in names:
                try:
                    callback(message)
                except Exception:  # a subscriber's bug must not take the link down
                    log.exception("AMI event subscriber failed on %s", message.name)

    def _fail_all(self, reason: str) -> None:
        error = PbxError(reason)
        for pending in list(self._pending.values()):
            for fut in (pending.future, pending.list_future):
                if fut is not None and not fut.done():
                    fut.set_exception(error)
        for fut2 in self._originates.values():
            if not fut2.done():
                fut2.set_exception(error)
        self._pending.clear()

    async def _supervise(self) -> None:
        delay = self.settings.backoff_initial
        while not self._stopping:
            logged_in = False
            try:
                logged_in = await self._session()
            except AmiPermissionError as exc:
                self._last_error = str(exc)
                log.error("%s", exc)
            except (PbxError, OSError, TimeoutError, ssl.SSLError) as exc:
                self._last_error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, PbxError) else str(exc)
                log.warning("AMI link to %s:%s: %s", self.settings.host, self.settings.port, self._last_error)
            if self._stopping:
                break
            if logged_in:
                delay = self.settings.backoff_initial
            self._reconnects += 1
            wait = delay * (0.8 + 0.4 * pysecrets.randbelow(1000) / 1000)
            log.info("AMI reconnect in %.1f s", wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.settings.backoff_max)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.tls:
            return None
        context = ssl.create_default_context()
        if not self.settings.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _session(self) -> bool:
        s = self.settings
        async with asyncio.timeout(s.connect_timeout):
            reader, writer = await asyncio.open_connection(s.host, s.port, ssl=self._ssl_context(),
                                                           server_hostname=s.host if s.tls else None)
        self._writer = writer
        reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader), name="ami-reader")
        logged_in = False
        try:
            await self._login()
            logged_in = True
            self._last_error = ""
            self._connected.set()
            log.info("AMI logged in to %s:%s as %s (%s)", s.host, s.port, s.username, self._banner)
            self._run_callbacks(self._on_connect, "on_connect")
            await self._watchdog(reader_task)
        finally:
            self._connected.clear()
            if logged_in:
                self._run_callbacks(self._on_disconnect, "on_disconnect")
            self._writer = None
            writer.close()
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ssl.SSLError):
                await reader_task
            self._fail_all("AMI link lost; unanswered actions are not re-sent")
        return logged_in

    async def _login(self) -> None:
        s = self.settings
        headers: list[tuple[str, str]] = [("Username", s.username)]
        if s.md5_login:
            challenge = await self.action("Challenge", [("AuthType", "MD5")])
            key = hashlib.md5((challenge.get("Challenge") + s.secret.reveal()).encode(), usedforsecurity=False)
            headers = [("AuthType", "MD5"), *headers, ("Key", key.hexdigest())]
        else:
            headers.append(("Secret", s.secret.reveal()))
        headers.append(("Events", "on"))
        try:
            await self.action("Login", headers)
        except AmiPermissionError:
            raise
        except PbxError as exc:
            raise PbxError(f"AMI login as '{s.username}' refused ({exc}); check [pbx] username/secret and "
                           "the permit= line of that manager.conf user") from None

    async def _watchdog(self, reader_task: asyncio.Task[None]) -> None:
        """Ping every ping_interval; a missing Pong means a half-open link: drop it and reconnect."""
        while True:
            done, _ = await asyncio.wait({reader_task}, timeout=self.settings.ping_interval)
            if done:
                return
            try:
                await self.ping(within=self.settings.action_timeout)
            except AmiTimeoutError:
                self._last_error = f"no Pong within {self.settings.action_timeout:g} s; dropped half-open link"
                log.warning("AMI %s", self._last_error)
                return
            except PbxError:
                return

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = AmiDecoder()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            self._last_rx = self._clock()
            for message in decoder.feed(data):
                self._dispatch(message)
            if decoder.banner and not self._banner:
                self._banner = decoder.banner


def other_channel_id(channel_id: str) -> str:
    """The Uniqueid of a Local channel's second half (;2), derived so it is just as unique."""
    return f"{channel_id}-2"


_LOGIN_ACTIONS = frozenset({"Login", "Challenge", "Logoff"})
