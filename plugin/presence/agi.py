"""`agi://HOST:PORT/presence`: is the called user in a meeting now? For the dialplan's routing decision.

Who is called: the first AGI argument (`AGI(agi://.../presence,${EXTEN})`), else `agi_extension`, else
`agi_dnid`. The answer is computed from SQLite at the moment of the call (the same pure rule as the BLF
state, plugin.presence.state), so it holds even while the AMI link is down. It sets:
- PBXSYNC_BUSY: 1 while the user is busy by their calendar, else 0 (also for an unknown extension, a user
  who opted out, or `[presence] enabled = false`: a call is never diverted on a guess);
- PBXSYNC_BUSY_UNTIL: when the busy time ends, HH:MM in `[presence] timezone` (with the date when that is
  not today), "" while free;
- PBXSYNC_SHOWAS: the show-as that makes them busy (busy, oof, tentative, ...), `free` while free;
- PBXSYNC_BUSY_FORWARD: the user's `presence_forward` extension while busy, else "".
"""

from __future__ import annotations

import logging

from pbxsync.plugin.agi.callerid import called_extension
from pbxsync.plugin.agi.server import AgiSession
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.presence.asterisk import until_text
from pbxsync.plugin.presence.calendar import PresenceSettings, load_items
from pbxsync.plugin.presence.state import FREE, UserState, state_at
from pbxsync.sync.config import Config
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.agi.presence")

BUSY_VARIABLE = "PBXSYNC_BUSY"


class PresenceAgiService:
    """The FastAGI handler for `/presence`."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.enabled = config.presence.enabled
        self.settings = PresenceSettings.from_config(config)

    async def state(self, extension: str) -> UserState:
        user = self.settings.user(extension) if self.enabled else None
        if user is None:
            return FREE
        now = self.clock.now()
        items = await load_items(self.store, [user.mailbox], now)
        return state_at(items[user.mailbox], now, self.settings.busy_statuses)

    async def __call__(self, session: AgiSession) -> None:
        request = session.request
        extension = called_extension(request.get, request.args)
        state = await self.state(extension)
        user = self.settings.user(extension)
        until = until_text(state.until, self.clock.now(), self.settings.zone) if state.until else ""
        await session.set_variable(BUSY_VARIABLE, "1" if state.busy else "0")
        await session.set_variable("PBXSYNC_BUSY_UNTIL", until)
        await session.set_variable("PBXSYNC_SHOWAS", state.show_as.value)
        await session.set_variable("PBXSYNC_BUSY_FORWARD", user.forward if state.busy and user is not None else "")
        log.debug("presence of %r: %s", extension[:32], "busy" if state.busy else "free")
