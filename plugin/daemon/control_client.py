"""Talking to a running daemon's control endpoint from the CLI (`status`, `sync`).

`None` means "no daemon is listening there", so a caller can fall back (e.g. `pbxsync sync` runs the
pass itself); any other problem raises `DaemonError` with one line for the operator.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from pbxsync.sync.config import Config
from pbxsync.sync.errors import PbxsyncError

STATUS_TIMEOUT_SECONDS = 10.0
SYNC_TIMEOUT_SECONDS = 3600.0  # a full pass over many mailboxes can take long; the daemon bounds it


class DaemonError(PbxsyncError):
    """The daemon answered, but not with what we asked for."""


def request(config: Config, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = STATUS_TIMEOUT_SECONDS) -> tuple[int, Any] | None:
    listen = config.control.listen
    conn = http.client.HTTPConnection(listen.host, listen.port, timeout=timeout)
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except TimeoutError:
        raise DaemonError(f"the daemon at {config.control.listen} did not answer within {timeout:.0f} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DaemonError(f"cannot talk to the daemon at {config.control.listen}: {exc}") from None
    finally:
        conn.close()
    try:
        doc = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise DaemonError(f"{config.control.listen} answered, but not like a pbxsync daemon") from None
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
