"""The FastAGI part of the daemon: one server with the `/callerid`, `/room` and `/presence` routes.

The daemon's wiring runs it as `AgiService` (see plugin.daemon.wiring); standalone use:

    server = build_agi_server(config, store, clock)   # a FastAgiServer
    await server.start()  ...  await server.close()
"""

from __future__ import annotations

from pbxsync.plugin.agi.callerid import SOURCE_VARIABLE, CallerIdLookup, CallerIdService
from pbxsync.plugin.agi.room import RoomService
from pbxsync.plugin.agi.server import AgiLimits, AgiSession, FastAgiServer, Handler
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service
from pbxsync.plugin.presence.agi import BUSY_VARIABLE, PresenceAgiService
from pbxsync.sync.config import Config
from pbxsync.sync.store.db import Store


def with_result(handler: Handler, variable: str, value: str, result: str) -> Handler:
    """`handler`, marking the request `result` (for the metrics) when it set `variable` to `value`."""

    async def run(session: AgiSession) -> None:
        await handler(session)
        if session.variables.get(variable) == value:
            session.result = result

    return run


def build_agi_server(config: Config, store: Store, clock: Clock) -> FastAgiServer:
    limits = AgiLimits(idle_timeout_seconds=config.agi.idle_timeout_seconds,
                       max_connections=config.agi.max_connections,
                       max_connections_per_source=config.agi.max_connections_per_source,
                       allow=tuple(config.agi.allow))
    lookup = CallerIdLookup(store, config)
    routes: dict[str, Handler] = {
        "callerid": with_result(CallerIdService(lookup), SOURCE_VARIABLE, "none", "miss"),
        "room": with_result(RoomService(store, config, clock), "PBXSYNC_ROOM_ADMIT", "no", "rejected"),
        "presence": with_result(PresenceAgiService(store, config, clock), BUSY_VARIABLE, "1", "busy"),
    }
    server = FastAgiServer(routes, config.agi.listen.host, config.agi.listen.port, limits)
    server.on_close.append(lookup.close)
    return server


class AgiService(Service):
    name = "agi"

    def __init__(self, server: FastAgiServer) -> None:
        super().__init__()
        self.server = server

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.close()
        await super().stop()

    def health(self) -> Health:
        if self.server.server is None:
            return Health(False, "not listening")
        s = self.server
        return Health(True, f"FastAGI listening on {s.address}",
                      {"listen": s.address, "active": s.active, "served": s.served, "rejected": s.rejected})

