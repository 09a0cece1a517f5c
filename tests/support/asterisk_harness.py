"""A real Asterisk 22 for integration tests, run from the Debian unstable chroot built by
`scripts/setup-asterisk.sh` (`make asterisk`). One module past 400 lines on purpose: the instance, the
config it writes and the raw AMI client tests talk to it with are used together, and this docstring is
their one manual.

Each instance runs `chroot ROOT /usr/sbin/asterisk -f -n -C /run/pbxsync-test-<pid>-<n>-<rand>/etc/asterisk.conf`
with private etc/run/log/lib/spool dirs under that path, AMI on 127.0.0.1:<port_for_config()>, every module
autoloaded except those that bind ports or need outside services (PJSIP, IAX2, HTTP/ARI, DUNDi, ...);
Local channels, ConfBridge, res_agi, app_voicemail and the core sounds (en, gsm) are there. Starting one
takes well under a second. DTMF into a Local channel (AMI PlayDTMF with `Receive: true`) needs media
flowing on it (originate the other side with Application=Milliwatt), else Asterisk holds the digits back.

Fixtures (tests/conftest.py); mark tests that use them with `@pytest.mark.asterisk`:

- `asterisk_root` (session): `Path` of the chroot. A missing chroot FAILS the test ("run make asterisk").
  It also stops and removes instances left behind by test processes that died (`sweep_stale_instances`).
- `asterisk` : a started `AsteriskInstance` with the default config (just the `[fake-phones]` context).
- `asterisk_factory`: `start_asterisk(**options) -> AsteriskInstance`, started; every instance it made is
  stopped (killed if need be) at teardown and its log tail printed (pytest shows it for failing tests).
  Options (all keyword, all optional):
    extensions: str        extra extensions.conf text (contexts), appended after `[fake-phones]`
    globals: dict[str,str] `[globals]` variables, e.g. {"PBXSYNC_AGI": "127.0.0.1:40123"}
    dialplan_files: list[Path]   files copied into the instance's config dir and `#include`d from
                                 extensions.conf (e.g. the project's dialplan/pbxsync-agi.conf)
    confbridge: str        extra confbridge.conf text (appended after the default profiles)
    confbridge_files: list[Path] files copied and `#include`d from confbridge.conf
    extra_files: dict[str,str]   name -> content written into the config dir (e.g. "voicemail.conf")
    ami_read / ami_write: str    the test AMI user's classes (default "all")

`AsteriskInstance` attributes and methods:
    host: str ("127.0.0.1"), port: int (AMI), user: str, secret: str
    root: Path (chroot), config_dir: Path (host path), config_dir_in_chroot: str
    log_path: Path (host path of the `full` log: verbose 5, NoOp/Verbose lines land here)
    pid: int | None, running: bool
    cli(command: str, timeout: float = 15) -> str   `asterisk -rx` with the same -C
    log_text() -> str;  log_tail(lines=80) -> str
    wait_for_log(needle: str, timeout: float = 10) -> str   polls the log, returns the matching line
                                  (blocks the thread: in async tests serving Asterisk use await_log)
    await await_log(needle, timeout=10) -> str            the same without blocking the event loop
    start(), stop(), restart()   restart keeps the config and the AMI port
    ami() -> AmiClient (async context manager; logged in, Events: on)

`AmiClient` (a minimal raw-socket AMI client for tests; the product's link lives in plugin/):
    await action(name, **headers) -> dict[str, str]        the Response message
    await action_list(name, **headers) -> list[dict]       the events of an event-list action
    await wait_event(predicate, timeout=10) -> dict        the first (buffered or new) matching event
    events: list[dict]                                     every event seen so far
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from tests.support.ports import port_for_config

DEFAULT_ROOT = "/var/cache/pbxsync/asterisk-sid"
ROOT_ENV = "PBXSYNC_ASTERISK_ROOT"
STAMP_NAME = ".pbxsync-asterisk-ready"

# The transcripts' test phones: answering 1XX, busy 199, never answering 198; and 171, a person who
# answers and presses 1 a second later (the DTMF crosses the Local channel to the caller's side).
FAKE_PHONES = """\
[fake-phones]
exten => 171,1,NoOp(fake phone 171 answering and pressing 1)
 same => n,Answer()
 same => n,Wait(1)
 same => n,SendDTMF(1)
 same => n,Wait(600)
 same => n,Hangup()
exten => _1XX,1,NoOp(fake phone ${EXTEN} answering)
 same => n,Answer()
 same => n,Wait(600)
 same => n,Hangup()
exten => 199,1,NoOp(fake phone 199 busy)
 same => n,Busy(10)
 same => n,Hangup()
exten => 198,1,NoOp(fake phone 198 rings forever)
 same => n,Ringing()
 same => n,Wait(600)
 same => n,Hangup()
"""

DEFAULT_CONFBRIDGE = """\
[general]

[default_bridge]
type=bridge
max_members=50

[default_user]
type=user
quiet=yes
announce_only_user=no
"""

# Modules that bind ports, talk to outside services or need hardware: never loaded in tests.
_NOLOAD_PREFIXES = (
    "chan_pjsip", "res_pjsip", "res_pjproject", "func_pjsip", "res_hep", "chan_iax2", "chan_motif",
    "res_xmpp", "chan_unistim", "chan_console", "chan_websocket", "res_websocket_client",
    "res_http_websocket", "res_http_media_cache", "res_http_post", "res_ari", "res_stasis", "app_stasis",
    "res_calendar", "res_config_", "res_odbc", "func_odbc", "app_voicemail_odbc", "cdr_", "cel_",
    "res_snmp", "res_smdi", "res_stun_monitor", "res_statsd", "res_prometheus", "pbx_dundi", "pbx_lua",
    "pbx_realtime", "res_phoneprov", "res_aeap", "res_speech_aeap", "res_geolocation", "res_stir_shaken",
    "res_resolver_unbound", "res_parking", "res_rtp_multicast", "app_jack", "app_festival", "res_fax",
    "res_realtime", "func_curl", "res_curl", "app_cdr", "app_forkcdr", "func_cdr", "app_celgenuserevent",
    "chan_rtp", "res_rtp_asterisk", "app_agent_pool", "app_alarmreceiver", "pbx_ael", "app_amd",
    "app_followme", "app_queue", "res_clialiases", "app_minivm", "res_adsi", "app_adsiprog", "app_getcpeid",
)


class AsteriskNotInstalled(RuntimeError):
    pass


class AsteriskStartError(RuntimeError):
    pass


def asterisk_root() -> Path:
    """The chroot, or AsteriskNotInstalled with the fix in the message."""
    root = Path(os.environ.get(ROOT_ENV, DEFAULT_ROOT))
    if not (root / STAMP_NAME).is_file() or not (root / "usr/sbin/asterisk").is_file():
        raise AsteriskNotInstalled(
            f"no Asterisk chroot at {root} (the real Asterisk 22 the integration tests need): "
            "run `make asterisk` (as root; it runs scripts/setup-asterisk.sh)"
        )
    return root


def sweep_stale_instances(root: Path) -> list[str]:
    """Stop and remove instances left by test processes that died (their name holds the test's pid)."""
    removed: list[str] = []
    for base in sorted((root / "run").glob("pbxsync-test-*")):
        try:
            owner = int(base.name.split("-")[2])
        except (IndexError, ValueError):
            continue
        if owner == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        pid_file = base / "run" / "asterisk.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            # only an Asterisk of this instance: its command line names this instance's config
            if base.name in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base.name)
    return removed


def _module_dir(root: Path) -> str:
    found = sorted(root.glob("usr/lib/*/asterisk/modules"))
    if not found:
        raise AsteriskNotInstalled(f"no Asterisk modules under {root}/usr/lib: run `make asterisk`")
    return "/" + str(found[0].relative_to(root))


class AsteriskInstance:
    """One Asterisk process in the chroot with a private config, run, log and spool dir."""

    _ids = itertools.count(1)

    def __init__(
        self,
        root: Path,
        *,
        extensions: str = "",
        globals: dict[str, str] | None = None,
        dialplan_files: Iterable[Path] = (),
        confbridge: str = "",
        confbridge_files: Iterable[Path] = (),
        extra_files: dict[str, str] | None = None,
        ami_read: str = "all",
        ami_write: str = "all",
    ) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = port_for_config()  # manager.conf names it; restart keeps it
        self.user = "pbxsync-test"
        self.secret = uuid.uuid4().hex
        name = f"pbxsync-test-{os.getpid()}-{next(self._ids)}-{uuid.uuid4().hex[:6]}"
        self.base_in_chroot = f"/run/{name}"
        self.base = root / self.base_in_chroot.lstrip("/")
        self.config_dir_in_chroot = f"{self.base_in_chroot}/etc"
        self.config_dir = self.base / "etc"
        self.log_path = self.base / "log" / "full"
        self._console_path = self.base / "console.out"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config(
            extensions=extensions, globals=globals or {}, dialplan_files=list(dialplan_files),
            confbridge=confbridge, confbridge_files=list(confbridge_files), extra_files=extra_files or {},
            ami_read=ami_read, ami_write=ami_write,
        )

    # -- config -------------------------------------------------------------------------------------
    def _write_config(
        self, *, extensions: str, globals: dict[str, str], dialplan_files: list[Path], confbridge: str,
        confbridge_files: list[Path], extra_files: dict[str, str], ami_read: str, ami_write: str,
    ) -> None:
        for sub in ("etc", "run", "log", "lib", "lib/keys", "spool", "cache"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        b = self.base_in_chroot
        mod_dir = _module_dir(self.root)
        files: dict[str, str] = {
            "asterisk.conf": (
                "[directories]\n"
                f"astcachedir => {b}/cache\nastetcdir => {b}/etc\nastmoddir => {mod_dir}\n"
                f"astvarlibdir => {b}/lib\nastdbdir => {b}/lib\nastkeydir => {b}/lib\n"
                "astdatadir => /usr/share/asterisk\nastagidir => /usr/share/asterisk/agi-bin\n"
                f"astspooldir => {b}/spool\nastrundir => {b}/run\nastlogdir => {b}/log\n"
                "astsbindir => /usr/sbin\n"
                "[options]\nverbose = 5\ndebug = 0\ndocumentation_language = en_US\n"
                "hideconnect = yes\ndontwarn = yes\n"
            ),
            "logger.conf": "[general]\n[logfiles]\nfull => notice,warning,error,verbose,dtmf\n",
            "modules.conf": self._modules_conf(mod_dir),
            "manager.conf": (
                "[general]\nenabled = yes\n"
                f"port = {self.port}\nbindaddr = 127.0.0.1\ndisplayconnects = no\n\n"
                f"[{self.user}]\nsecret = {self.secret}\n"
                "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
                f"read = {ami_read}\nwrite = {ami_write}\nwritetimeout = 5000\n"
            ),
            "confbridge.conf": DEFAULT_CONFBRIDGE + confbridge + "\n" + "".join(
                f"#include {b}/etc/{p.name}\n" for p in confbridge_files),
            "musiconhold.conf": "[general]\n",
            "indications.conf": "[general]\ncountry = us\n[us]\ndescription = United States\n"
                                "ringcount = 440+480/2000,0/4000\nbusy = 480+620/500,0/500\n"
                                "congestion = 480+620/250,0/250\ndial = 350+440\n",
            "voicemail.conf": "[general]\n",
            "cdr.conf": "[general]\nenable = no\n",
            "cel.conf": "[general]\nenable = no\n",
            **{name: "[general]\n" for name in ("features.conf", "udptl.conf", "ccss.conf")},
            "acl.conf": "",
        }
        glob_lines = "".join(f"{k}={v}\n" for k, v in globals.items())
        includes = "".join(f"#include {b}/etc/{p.name}\n" for p in dialplan_files)
        files["extensions.conf"] = (
            "[general]\nstatic = yes\nwriteprotect = yes\nclearglobalvars = yes\n\n"
            f"[globals]\n{glob_lines}\n{FAKE_PHONES}\n{includes}\n{extensions}\n"
        )
        files.update(extra_files)
        for name, text in files.items():
            (self.config_dir / name).write_text(text)
        for p in [*dialplan_files, *confbridge_files]:
            shutil.copyfile(p, self.config_dir / p.name)

    def _modules_conf(self, mod_dir: str) -> str:
        names = sorted(p.name for p in (self.root / mod_dir.lstrip("/")).glob("*.so"))
        noload = [n for n in names if n.startswith(_NOLOAD_PREFIXES)]
        return "[modules]\nautoload = yes\n" + "".join(f"noload => {n}\n" for n in noload)

    # -- process ------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        with self._console_path.open("ab") as console:
            self._proc = subprocess.Popen(
                ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n",
                 "-C", f"{self.config_dir_in_chroot}/asterisk.conf"],
                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "not tried"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise AsteriskStartError(
                    f"Asterisk exited with {self._proc.returncode} while starting\n{self.log_tail()}"
                )
            try:
                if self._ami_fully_booted(min(2.0, max(0.1, deadline - time.monotonic()))):
                    return
                last_error = "AMI up, not fully booted yet"
            except OSError as exc:
                last_error = repr(exc)
            time.sleep(0.05)  # polling interval while the process boots, not a wait for an outcome
        raise AsteriskStartError(
            f"Asterisk AMI on {self.host}:{self.port} not ready within {timeout}s ({last_error})\n"
            f"{self.log_tail()}"
        )

    def _ami_fully_booted(self, timeout: float) -> bool:
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            s.sendall(
                f"Action: Login\r\nUsername: {self.user}\r\nSecret: {self.secret}\r\n"
                "Events: system\r\nActionID: ready\r\n\r\n".encode()
            )
            while b"FullyBooted" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    return False
                data += chunk
                if b"Response: Error" in data:
                    raise AsteriskStartError(f"AMI login refused: {data!r}")
            return True

    def stop(self, timeout: float = 15.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._proc = None

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout)

    def cleanup(self) -> None:
        """Stop and remove the instance's directory in the chroot."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- inspection ---------------------------------------------------------------------------------
    def cli(self, command: str, timeout: float = 15.0) -> str:
        done = subprocess.run(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-C",
             f"{self.config_dir_in_chroot}/asterisk.conf", "-rx", command],
            capture_output=True, timeout=timeout, check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({done.returncode}): "
                               f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}")
        return done.stdout.decode("utf-8", errors="replace")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_text().splitlines()[-lines:]
        console = ""
        with contextlib.suppress(FileNotFoundError):
            console = self._console_path.read_text(errors="replace")[-2000:]
        return (f"--- Asterisk log {self.log_path} (last {lines} lines) ---\n" + "\n".join(text)
                + (f"\n--- console ---\n{console}" if console.strip() else ""))

    def _log_line(self, needle: str, deadline: float, timeout: float) -> str | None:
        """The first log line holding `needle`; None to look again; AssertionError once past `deadline`."""
        for line in self.log_text().splitlines():
            if needle in line:
                return line
        if time.monotonic() >= deadline:
            raise AssertionError(f"{needle!r} not in the Asterisk log within {timeout}s\n{self.log_tail()}")
        return None

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while (line := self._log_line(needle, deadline, timeout)) is None:
            time.sleep(0.05)  # polling interval
        return line

    async def await_log(self, needle: str, timeout: float = 10.0) -> str:
        """Like wait_for_log, without blocking the event loop (use it when the test also serves
        something Asterisk talks to, e.g. a FastAGI server, in the same loop)."""
        deadline = time.monotonic() + timeout
        while (line := self._log_line(needle, deadline, timeout)) is None:
            await asyncio.sleep(0.05)  # polling interval
        return line

    def ami(self) -> AmiClient:
        return AmiClient(self.host, self.port, self.user, self.secret)


Message = dict[str, str]


class AmiClient:
    """Minimal AMI client for tests: one reader task sorts responses by ActionID and buffers events."""

    _ids = itertools.count(1)

    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        self.host, self.port, self.user, self.secret = host, port, user, secret
        self.events: list[Message] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        banner = await asyncio.wait_for(self._reader.readline(), 10)
        assert banner.startswith(b"Asterisk Call Manager/"), banner
        self._task = asyncio.create_task(self._read_loop())
        reply = await self.action("Login", Username=self.user, Secret=self.secret, Events="on")
        assert reply.get("Response") == "Success", reply

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read_loop(self) -> None:
        assert self._reader is not None
        message: Message = {}
        while True:
            raw = await self._reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line:
                key, _, value = line.partition(":")
                message[key.strip()] = value.strip()
                continue
            if not message:
                continue
            action_id = message.get("ActionID", "")
            if "Response" in message and action_id in self._pending:
                fut = self._pending.pop(action_id)
                if not fut.done():
                    fut.set_result(message)
            elif "Event" in message:
                async with self._changed:
                    self.events.append(message)
                    self._changed.notify_all()
            message = {}
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("AMI connection closed"))

    async def _send(self, name: str, headers: dict[str, str]) -> tuple[str, asyncio.Future[Message]]:
        assert self._writer is not None
        action_id = f"t{next(self._ids)}"
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = fut
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        for key, value in headers.items():
            values = value if isinstance(value, list) else [value]
            lines.extend(f"{key}: {v}" for v in values)
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        return action_id, fut

    async def action(self, name: str, timeout: float = 15.0, **headers: str) -> Message:
        _, fut = await self._send(name, headers)
        return await asyncio.wait_for(fut, timeout)

    async def action_list(self, name: str, timeout: float = 15.0, **headers: str) -> list[Message]:
        action_id, fut = await self._send(name, headers)
        reply = await asyncio.wait_for(fut, timeout)
        if reply.get("Response") != "Success":
            raise AssertionError(f"{name} failed: {reply}")
        done = await self.wait_event(
            lambda e: e.get("ActionID") == action_id and e.get("EventList") == "Complete", timeout)
        return [e for e in self.events if e.get("ActionID") == action_id and e is not done]

    async def wait_event(self, predicate: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        async def find() -> Message:
            async with self._changed:
                seen = 0
                while True:
                    for event in self.events[seen:]:
                        if predicate(event):
                            return event
                    seen = len(self.events)
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(f"no matching AMI event within {timeout}s; last events: "
                                 f"{self.events[-5:]}") from None
