"""The control endpoint (`pbxsync status`, `pbxsync sync` in a running daemon) and /metrics.

On a Unix socket (0660: root and the pbxsync group) by default, or on TCP with a Bearer token; every
request passes `control_guard` first (Host, Origin, JSON only, the token).

    GET  /status          every service's health, JSON
    POST /sync            {"user": "101"} or {} for everyone: runs a pass now, returns its summary
    POST /reload          the same as SIGHUP
    GET  /metrics         (on metrics_listen) Prometheus text format
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Protocol

from aiohttp import web

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.control_guard import Guard, json_error, json_response, refusal
from pbxsync.plugin.daemon.service import SiteService
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.errors import ServiceUnavailableError, UserError
from pbxsync.sync.http_site import Limits, start_site
from pbxsync.sync.listen import ListenAddress

log = logging.getLogger("pbxsync.daemon.control")

# What the control endpoint has always allowed; every malformed request is answered 400, as before.
CONTROL_LIMITS = Limits(max_header_bytes=16 * 1024, max_body_bytes=64 * 1024, refusal_status=400)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _one_handler_app(handle: Handler) -> web.Application:
    """Every method and path goes to `handle`, which answers 404/405 itself (in JSON, as the CLI reads)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handle(request)
        except Exception as exc:  # one bad request never takes the endpoint down
            log.exception("control request %s %s failed", request.method, request.path[:64])
            return json_error(500, f"internal error: {type(exc).__name__}")

    app = web.Application(client_max_size=CONTROL_LIMITS.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", guarded)
    return app


def control_app(target: ControlTarget, guard: Guard) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()  # already read (and capped) by the site
        refused = refusal(guard, request.method, request.headers, body)
        if refused is not None:
            log.warning("control request %s %s refused: HTTP %d", request.method, request.path[:64], refused.status)
            return refused
        if request.path == "/status" and request.method == "GET":
            return json_response(target.status())
        if request.path == "/sync" and request.method == "POST":
            try:
                doc = json.loads(body.decode("utf-8")) if body else {}
            except (ValueError, UnicodeDecodeError, RecursionError):
                return json_error(400, "body must be JSON")
            user = doc.get("user") if isinstance(doc, dict) else None
            if user is not None and not isinstance(user, str):
                return json_error(400, "user must be an extension string")
            try:
                summary = await target.sync_now(user)
            except UserError as exc:
                return json_error(404, str(exc))
            except ServiceUnavailableError as exc:
                return json_error(503, str(exc))
            return json_response(summary_json(summary))
        if request.path == "/reload" and request.method == "POST":
            ok = await target.reload()
            return json_response({"reloaded": ok}, 200 if ok else 422)
        if request.path in ("/status", "/sync", "/reload"):
            return json_error(405, "method not allowed")
        return json_error(404, "not found")

    return _one_handler_app(handle)


def metrics_app() -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path != "/metrics" or request.method != "GET":
            return json_error(404, "not found: try GET /metrics")
        return web.Response(body=await metrics.render(), headers={"Content-Type": PROMETHEUS_TEXT})

    return _one_handler_app(handle)


class ControlService(SiteService):
    """Control over TCP: every request must carry the Bearer token."""

    def __init__(self, listen: ListenAddress, token: str, target: ControlTarget, name: str = "control",
                 limits: Limits = CONTROL_LIMITS) -> None:
        guard = Guard.for_tcp(listen.host, token)
        super().__init__(name, lambda: start_site(control_app(target, guard), listen, limits=limits))


class ControlSocketService(SiteService):
    """Control over a Unix socket (0660): who may open the file may ask."""

    def __init__(self, path: str, target: ControlTarget, limits: Limits = CONTROL_LIMITS) -> None:
        self.path = path
        super().__init__("control", lambda: start_site(control_app(target, Guard.for_unix()), path, limits=limits))


class MetricsService(SiteService):
    def __init__(self, listen: ListenAddress) -> None:
        super().__init__("metrics", lambda: start_site(metrics_app(), listen, limits=CONTROL_LIMITS))


def dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)
