"""Talking to a running daemon's control endpoint from the CLI (`status`, `sync`).

The Unix socket (`[control] socket`) when configured, else TCP with the Bearer token. `None` means "no
daemon is listening there", so a caller can fall back (e.g. `pbxsync sync` runs the pass itself); any
other problem raises `DaemonError` with one line for the operator. The standard library's http.client,
not aiohttp's client: the CLI is synchronous and one request needs no event loop.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError

STATUS_TIMEOUT_SECONDS = 10.0
SYNC_TIMEOUT_SECONDS = 3600.0  # a full pass over many mailboxes can take long; the daemon bounds it


class DaemonError(PbxsyncError):
    """The daemon answered, but not with what we asked for."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # the Host header the endpoint expects
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def control_address(config: Config) -> str:
    """Where the CLI looks for the daemon, as the operator would write it."""
    control = config.control
    return f"control.socket {control.socket}" if control.socket else f"control.listen {control.listen}"


def request(config: Config, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = STATUS_TIMEOUT_SECONDS) -> tuple[int, Any] | None:
    control = config.control
    headers: dict[str, str] = {}
    conn: http.client.HTTPConnection
    if control.socket:
        conn = _UnixConnection(control.socket, timeout)
    else:
        assert control.listen is not None  # the config requires one of the two
        conn = http.client.HTTPConnection(control.listen.host, control.listen.port, timeout=timeout)
        headers["Authorization"] = f"Bearer {control.token.reveal()}"
    where = control_address(config)
    payload = json.dumps(body).encode() if body is not None else None
    if payload is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except PermissionError:
        raise DaemonError(f"no permission to use {where}: run as root or as a member of the pbxsync group") from None
    except TimeoutError:
        raise DaemonError(f"the daemon at {where} did not answer within {timeout:.0f} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DaemonError(f"cannot talk to the daemon at {where}: {exc}") from None
    finally:
        conn.close()
    try:
        doc = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise DaemonError(f"{where} answered, but not like a pbxsync daemon") from None
    return response.status, doc


def daemon_status(config: Config) -> dict[str, Any] | None:
    """The running daemon's /status document, or None when no daemon is running."""
    answer = request(config, "GET", "/status")
    if answer is None:
        return None
    status, doc = answer
    if status != 200 or not isinstance(doc, dict):
        raise DaemonError(f"the daemon answered /status with HTTP {status}")
    return doc


def trigger_sync_in_daemon(config: Config, user: str | None) -> dict[str, Any] | None:
    """Run "Sync now" in the running daemon and return its pass summary, or None if none is running.

    The summary is sync.engine.PassSummary as JSON (dataclasses.asdict) plus "ok" on the pass and on
    each user. An unknown extension raises DaemonError with the daemon's message.
    """
    answer = request(config, "POST", "/sync", {"user": user} if user else {}, timeout=SYNC_TIMEOUT_SECONDS)
    if answer is None:
        return None
    status, doc = answer
    if status != 200 or not isinstance(doc, dict):
        message = doc.get("error") if isinstance(doc, dict) else None
        raise DaemonError(message or f"the daemon answered /sync with HTTP {status}")
    return doc


def reload_daemon(config: Config) -> bool | None:
    answer = request(config, "POST", "/reload", {})
    if answer is None:
        return None
    return answer[0] == 200
