"""The control endpoint (`pbxsync status`, `pbxsync sync` in a running daemon) and /metrics.

On a Unix socket (0660: root and the pbxsync group) by default, or on TCP with a Bearer token; every
request passes `control_guard` first (Host, Origin, JSON only, the token).

    GET  /status          every service's health, JSON
    POST /sync            {"user": "101"} or {} for everyone: runs a pass now, returns its summary
    POST /reload          the same as SIGHUP
    GET  /metrics         (on metrics_listen) Prometheus text format
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict
from typing import Any, Protocol

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.control_guard import Guard, refusal
from pbxsync.plugin.daemon.http import Limits, Request, Response, start_http_server, start_unix_http_server
from pbxsync.plugin.daemon.service import ServerService
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.errors import UserError
from pbxsync.sync.listen import ListenAddress

log = logging.getLogger("pbxsync.daemon.control")


class ControlTarget(Protocol):
    def status(self) -> dict[str, Any]: ...

    async def sync_now(self, extension: str | None) -> PassSummary: ...

    async def reload(self) -> bool: ...


def summary_json(summary: PassSummary) -> dict[str, Any]:
    doc = asdict(summary)
    doc["ok"] = summary.ok
    for user, raw in zip(summary.users, doc["users"], strict=True):
        raw["ok"] = user.ok
    return doc


def control_handler(target: ControlTarget, guard: Guard) -> Any:
    async def handle(request: Request) -> Response:
        refused = refusal(guard, request)
        if refused is not None:
            log.warning("control request %s %s refused: HTTP %d", request.method, request.path[:64], refused.status)
            return refused
        if request.path == "/status" and request.method == "GET":
            return Response.json(target.status())
        if request.path == "/sync" and request.method == "POST":
            try:
                body = request.json()
            except (ValueError, UnicodeDecodeError, RecursionError):
                return Response.error(400, "body must be JSON")
            user = body.get("user") if isinstance(body, dict) else None
            if user is not None and not isinstance(user, str):
                return Response.error(400, "user must be an extension string")
            try:
                summary = await target.sync_now(user)
            except UserError as exc:
                return Response.error(404, str(exc))
            except RuntimeError as exc:
                return Response.error(503, str(exc))
            return Response.json(summary_json(summary))
        if request.path == "/reload" and request.method == "POST":
            ok = await target.reload()
            return Response.json({"reloaded": ok}, 200 if ok else 422)
        if request.path in ("/status", "/sync", "/reload"):
            return Response.error(405, "method not allowed")
        return Response.error(404, "not found")

    return handle


async def _metrics_handler(request: Request) -> Response:
    if request.path != "/metrics" or request.method != "GET":
        return Response.error(404, "not found: try GET /metrics")
    return Response(200, await metrics.render(), "text/plain; version=0.0.4; charset=utf-8")


class ControlService(ServerService):
    """Control over TCP: every request must carry the Bearer token."""

    def __init__(self, listen: ListenAddress, token: str, target: ControlTarget, name: str = "control",
                 limits: Limits | None = None) -> None:
        handler = control_handler(target, Guard.for_tcp(listen.host, token))
        super().__init__(name, lambda: start_http_server(listen.host, listen.port, handler, limits))


class ControlSocketService(ServerService):
    """Control over a Unix socket: who may open the file may ask."""

    def __init__(self, path: str, target: ControlTarget, limits: Limits | None = None) -> None:
        handler = control_handler(target, Guard.for_unix())
        self.path = path
        super().__init__("control", lambda: start_unix_http_server(path, handler, limits))

    async def stop(self) -> None:
        listening = self.server is not None
        await super().stop()
        if listening:  # only our own socket file: a failed start may have met another daemon's
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


class MetricsService(ServerService):
    def __init__(self, listen: ListenAddress) -> None:
        super().__init__("metrics", lambda: start_http_server(listen.host, listen.port, _metrics_handler))


def dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)
