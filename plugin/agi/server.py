"""Our own FastAGI server on asyncio.

panoramisk's FastAGI server spins at 100% CPU on a truncated request; this one treats every byte from the
socket as hostile: the request (the `agi_*` environment) is bounded in bytes, lines and time, a connection
that sends garbage, stops mid-request or stays idle is closed with one log line, and the number of
connections is capped (in total and per address; only `[agi] allow` may connect at all). One bad connection
never affects the others.

Wire protocol (Asterisk's res_agi): Asterisk connects and sends `agi_name: value` lines ended by an empty
line; the request path is `agi_network_script` (`agi://host:port/callerid?x=y` -> `callerid`). Then the
server sends one command per line and reads a `NNN result=...` reply each time (a `520-` reply spans
lines until `520 `; a bare `HANGUP` line says the channel hung up). Closing the socket ends the AGI and the
dialplan goes on with AGISTATUS=SUCCESS.

Over 400 lines on purpose: the wire format (request parsing, replies, quoting) and the server's guards
(allow list, caps, timeouts) are one adapter around the same bytes; the handlers live elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pbxsync.plugin import metrics
from pbxsync.plugin.throttle import WindowedLog
from pbxsync.sync.errors import PbxError

log = logging.getLogger("pbxsync.agi")


class AgiError(PbxError):
    """The FastAGI conversation failed: a malformed request, a refused command, a hung-up channel."""


class AgiHangup(AgiError):
    """The channel hung up; the handler should stop sending commands."""


@dataclass(frozen=True)
class AgiLimits:
    max_line_bytes: int = 1024  # one agi_* line; Asterisk's values (channel names, caller IDs) are short
    max_request_bytes: int = 8192
    max_request_lines: int = 64  # Asterisk sends ~25 agi_* lines plus one per argument
    idle_timeout_seconds: float = 10.0  # waiting for a request line or a command reply
    max_connections: int = 200
    session_timeout_seconds: float = 120.0  # one whole conversation (PIN entry included)
    max_connections_per_source: int = 200
    allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")  # who may speak FastAGI (`[agi] allow`)

    def allowed(self, host: str) -> bool:
        return allowed(host, self.allow)


def allowed(host: str, networks: Sequence[str]) -> bool:
    """Whether the address `host` lies in one of `networks` (CIDRs or addresses; a bad entry never matches,
    the config check reports it)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


_ENV_LINE = re.compile(r"^agi_([a-z0-9_]{1,40}): ?(.*)$")
_REPLY = re.compile(r"^(\d{3}) (.*)$")
_RESULT = re.compile(r"^result=(-?[0-9A-Za-z*#]*)(?: \((.*)\))?((?: [a-z_]+=\S*)*)$", re.DOTALL)
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(?:\([A-Za-z0-9_,-]{0,32}\))?$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/.-]{0,127}$")
_ESCAPE_DIGITS = re.compile(r"^[0-9*#]{0,12}$")
MAX_VALUE_LENGTH = 256


def sanitize_value(value: str, max_length: int = MAX_VALUE_LENGTH) -> str:
    """A value safe to put on one AGI command line inside double quotes.

    Control characters (CR, LF, NUL, ...) become spaces, runs of whitespace collapse, `${`/`$[` lose the
    `$` (nothing downstream should ever evaluate a value we set), and the length is capped before quoting.
    """
    out: list[str] = []
    for ch in value[: max_length * 4]:
        cat = unicodedata.category(ch)
        out.append(" " if cat.startswith(("C", "Z")) else ch)
    text = " ".join("".join(out).split())
    while "${" in text or "$[" in text:  # once is not enough: "$${X}" would become "${X}"
        text = text.replace("${", "{").replace("$[", "[")
    return text[:max_length].rstrip()


def quote(value: str, max_length: int = MAX_VALUE_LENGTH) -> str:
    """The sanitised value as one AGI argument: res_agi's parser honours `\\` escapes and `"` quoting."""
    clean = sanitize_value(value, max_length)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str = ""  # the text after result=, e.g. "1", "-1", "1234"
    data: str | None = None  # the text in parentheses: a variable's value, "timeout"
    extra: Mapping[str, str] = field(default_factory=dict)  # endpos=... and friends
    text: str = ""  # the raw first line, for logs

    @property
    def ok(self) -> bool:
        return self.code == 200


def parse_reply(line: str) -> AgiReply:
    """Parse one reply line (`200 result=1 (value)`); AgiError if it is not a reply at all."""
    m = _REPLY.match(line)
    if not m:
        raise AgiError(f"not an AGI reply: {line[:80]!r}")
    code, rest = int(m.group(1)), m.group(2)
    r = _RESULT.match(rest)
    if code != 200 or not r:
        return AgiReply(code, text=line)
    extra = dict(item.split("=", 1) for item in r.group(3).split())
    return AgiReply(code, r.group(1), r.group(2), extra, line)


@dataclass(frozen=True)
class AgiRequest:
    """The `agi_*` environment Asterisk sends, with the request path and arguments picked out."""

    env: Mapping[str, str]
    path: str  # "callerid" for agi://host:port/callerid?x=y
    query: str
    args: tuple[str, ...]

    def get(self, name: str, default: str = "") -> str:
        return self.env.get(name, default)

    @staticmethod
    def from_env(env: Mapping[str, str]) -> AgiRequest:
        script = env.get("network_script", "")
        path, _, query = script.partition("?")
        args: list[str] = []
        for i in range(1, 64):
            if f"arg_{i}" not in env:
                break
            args.append(env[f"arg_{i}"])
        return AgiRequest(dict(env), path.strip("/"), query, tuple(args))


class AgiRequestError(AgiError):
    pass


async def read_request(reader: asyncio.StreamReader, limits: AgiLimits) -> AgiRequest:
    """Read the environment block; AgiRequestError on garbage, truncation, size or time limits.

    The whole block must arrive within the idle timeout (Asterisk writes it at once)."""
    try:
        async with asyncio.timeout(limits.idle_timeout_seconds):
            return await _read_env(reader, limits)
    except TimeoutError:
        raise AgiRequestError("idle while sending the request") from None


async def _read_env(reader: asyncio.StreamReader, limits: AgiLimits) -> AgiRequest:
    env: dict[str, str] = {}
    total = 0
    for _ in range(limits.max_request_lines + 1):
        try:
            raw = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise AgiRequestError(f"request line longer than {limits.max_line_bytes} bytes") from None
        if not raw:
            raise AgiRequestError("connection closed mid-request (truncated)")
        if not raw.endswith(b"\n"):
            raise AgiRequestError("connection closed mid-line (truncated)")
        total += len(raw)
        if total > limits.max_request_bytes:
            raise AgiRequestError(f"request larger than {limits.max_request_bytes} bytes")
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise AgiRequestError("request is not UTF-8") from None
        if not line:
            if not env:
                raise AgiRequestError("empty request")
            return AgiRequest.from_env(env)
        m = _ENV_LINE.match(line)
        if not m:
            raise AgiRequestError(f"not an agi_* line: {line[:60]!r}")
        env[m.group(1)] = m.group(2)
    raise AgiRequestError(f"request has more than {limits.max_request_lines} lines")


class AgiSession:
    """One FastAGI conversation: the request plus the command API handlers use."""

    def __init__(self, request: AgiRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 limits: AgiLimits) -> None:
        self.request = request
        self._reader = reader
        self._writer = writer
        self._limits = limits
        self.hung_up = False
        # What the request came to, for the pbxsync_agi_requests_total metric: "ok", or "miss" (nothing
        # found) / "rejected" (refused) set by the handler or its wiring; the server sets "error".
        self.result = "ok"
        self.variables: dict[str, str] = {}  # what SET VARIABLE set, sanitised (Asterisk accepted it)

    async def command(self, line: str, reply_timeout: float | None = None) -> AgiReply:
        """Send one command line (already sanitised) and read its reply."""
        if self.hung_up:
            raise AgiHangup("channel hung up")
        if any(c in line for c in "\r\n\0"):
            raise AgiError("refusing to send a command with a line break or NUL")  # a bug, never input
        self._writer.write(line.encode("utf-8") + b"\n")
        await self._writer.drain()
        timeout = self._limits.idle_timeout_seconds + (reply_timeout or 0.0)
        while True:
            line_in = await self._read_line(timeout)
            if line_in == "HANGUP":  # res_agi tells a network script once, then answers 511
                self.hung_up = True
                continue
            if re.match(r"^\d{3}-", line_in):  # multi-line reply (520- usage text): read to "NNN "
                code = line_in[:3]
                for _ in range(64):
                    if (await self._read_line(timeout)).startswith(code + " "):
                        break
                return AgiReply(int(code), text=line_in)
            reply = parse_reply(line_in)
            log.debug("FastAGI: %s -> %s", line[:60], line_in[:80])
            if reply.code == 511:
                self.hung_up = True
                raise AgiHangup("channel hung up")
            return reply

    async def _read_line(self, wait_seconds: float) -> str:
        try:
            async with asyncio.timeout(wait_seconds):
                raw = await self._reader.readline()
        except TimeoutError:
            raise AgiError("no reply from Asterisk in time") from None
        except (ValueError, asyncio.LimitOverrunError):
            raise AgiError("reply line too long") from None
        if not raw.endswith(b"\n"):
            raise AgiHangup("connection closed")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def set_variable(self, name: str, value: str, max_length: int = MAX_VALUE_LENGTH) -> AgiReply:
        if not _VARIABLE_NAME.match(name):
            raise AgiError(f"invalid variable name {name[:40]!r}")
        reply = await self.command(f"SET VARIABLE {name} {quote(value, max_length)}")
        if reply.ok:
            self.variables[name] = sanitize_value(value, max_length)
        return reply

    async def get_variable(self, name: str) -> str | None:
        if not _VARIABLE_NAME.match(name):
            raise AgiError(f"invalid variable name {name[:40]!r}")
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.ok and reply.result == "1" else None

    async def answer(self) -> bool:
        reply = await self.command("ANSWER")
        return reply.ok and reply.result == "0"

    async def verbose(self, message: str, level: int = 1) -> AgiReply:
        return await self.command(f"VERBOSE {quote(message)} {max(1, min(level, 4))}")

    async def stream_file(self, name: str, escape_digits: str = "") -> AgiReply:
        _check_file(name)
        if not _ESCAPE_DIGITS.match(escape_digits):
            raise AgiError("invalid escape digits")
        return await self.command(f'STREAM FILE {name} "{escape_digits}"', reply_timeout=60.0)

    async def get_data(self, prompt: str, timeout_ms: int = 5000, max_digits: int = 8) -> str | None:
        """Play `prompt`, collect up to `max_digits` DTMF digits (`#` ends). None: nothing entered or
        the channel failed; the digits otherwise."""
        _check_file(prompt)
        timeout_ms = max(500, min(timeout_ms, 60000))
        max_digits = max(1, min(max_digits, 32))
        reply = await self.command(f"GET DATA {prompt} {timeout_ms} {max_digits}",
                                   reply_timeout=timeout_ms / 1000 + 30.0)
        if not reply.ok or reply.result.startswith("-"):
            return None
        digits = reply.result
        return digits if re.fullmatch(r"[0-9*#]{1,32}", digits) else None


def _check_file(name: str) -> None:
    if not _FILE_NAME.match(name) or ".." in name:
        raise AgiError(f"invalid sound file name {name[:40]!r}")


Handler = Callable[[AgiSession], Awaitable[None]]
UNKNOWN_SERVICE = "unknown"  # the metrics' service label for requests refused before a route was chosen


class FastAgiServer:
    """Routes FastAGI requests by path to handlers. `start()` binds, `close()` stops listening and waits."""

    def __init__(self, routes: Mapping[str, Handler], host: str = "127.0.0.1", port: int = 4573,
                 limits: AgiLimits | None = None) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self.limits = limits or AgiLimits()
        self.server: asyncio.Server | None = None
        self.active = 0
        self.served = 0
        self.rejected = 0
        self.per_source: Counter[str] = Counter()
        self.refusals = WindowedLog(60.0)
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_close: list[Callable[[], None]] = []  # e.g. closing a handler's database connection

    async def start(self) -> asyncio.Server:
        self.server = await asyncio.start_server(self._on_connect, self.host, self.port,
                                                 limit=self.limits.max_line_bytes)
        sock = self.server.sockets[0].getsockname()
        self.port = int(sock[1])
        log.info("FastAGI listening on %s:%s (routes: %s)", sock[0], self.port, ", ".join(sorted(self.routes)))
        return self.server

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
            self.server = None
        for closer in self.on_close:
            closer()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = _peer(writer)
        source = peer.rpartition(":")[0]
        try:
            refusal = self._refusal(source)
            if refusal:
                self.rejected += 1
                metrics.AGI_REQUESTS.labels(UNKNOWN_SERVICE, "rejected").inc()
                count = self.refusals.note((source, refusal), time.monotonic())
                if count:  # once a minute per source and reason, not once per try
                    log.warning("FastAGI: refused %d connection(s) from %s in the last minute: %s", count, source,
                                refusal)
                return
            self.active += 1
            self.per_source[source] += 1
            try:
                async with asyncio.timeout(self.limits.session_timeout_seconds):
                    await self._serve(reader, writer, peer)
            except TimeoutError:
                log.warning("FastAGI: %s: conversation exceeded %.0fs, closed", peer,
                            self.limits.session_timeout_seconds)
            finally:
                self.active -= 1
                self.per_source[source] -= 1
                if self.per_source[source] <= 0:
                    del self.per_source[source]
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    def _refusal(self, source: str) -> str:
        """Why a connection from `source` is refused ("" when it is not)."""
        if not self.limits.allowed(source):
            return "not in [agi] allow"
        if self.active >= self.limits.max_connections:
            return f"{self.active} connections open (limit)"
        if self.per_source[source] >= self.limits.max_connections_per_source:
            return f"{self.per_source[source]} connections open from this address (limit)"
        return ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        try:
            request = await read_request(reader, self.limits)
        except AgiRequestError as exc:
            self.rejected += 1
            metrics.AGI_REQUESTS.labels(UNKNOWN_SERVICE, "rejected").inc()
            log.warning("FastAGI: %s: bad request, closed: %s", peer, exc)
            return
        handler = self.routes.get(request.path)
        if handler is None:
            self.rejected += 1
            metrics.AGI_REQUESTS.labels(UNKNOWN_SERVICE, "rejected").inc()  # the path is hostile: no label
            log.warning("FastAGI: %s: unknown service %r, closed", peer, request.path[:40])
            return
        session = AgiSession(request, reader, writer, self.limits)
        started = time.perf_counter()
        result = "error"  # unless the handler ends: a timeout or cancellation is an error too
        try:
            await handler(session)
            self.served += 1
            result = session.result
        except AgiHangup:  # callers hang up (e.g. during PIN entry): not a failure of ours
            result = session.result
            log.info("FastAGI: %s: /%s: channel hung up", peer, request.path)
        except (AgiError, OSError) as exc:
            log.warning("FastAGI: %s: /%s failed: %s", peer, request.path, exc)
        except Exception:  # a bug in a handler must not take the server down
            log.exception("FastAGI: %s: /%s crashed", peer, request.path)
        finally:
            metrics.AGI_DURATION.labels(request.path).observe(time.perf_counter() - started)
            metrics.AGI_REQUESTS.labels(request.path, result).inc()
            if result == "error":
                metrics.ERRORS.labels("agi").inc()


def _peer(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return "?"
