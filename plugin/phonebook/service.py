"""The XML phonebook as a daemon part (plugin.daemon.wiring `_phonebook`)."""

from __future__ import annotations

from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.plugin.phonebook.refresh import Refresh
from pbxsync.plugin.phonebook.server import PhonebookServer
from pbxsync.sync.config import Config
from pbxsync.sync.store.db import Store


class PhonebookService(Service):
    name = "phonebook"

    def __init__(self, config: Config, store: Store, published: Slot[Refresh] | None = None) -> None:
        super().__init__()
        self.server = PhonebookServer(config, store)
        self.published = published
        self._refresh: Refresh = self.server.refresh  # one bound method: `withdraw` compares identity

    async def start(self) -> None:
        await self.server.start()
        if self.published is not None:
            self.published.publish(self._refresh)

    async def stop(self) -> None:
        if self.published is not None:
            self.published.withdraw(self._refresh)
        await self.server.stop()
        await super().stop()

    def health(self) -> Health:
        h = self.server.health()
        data = {k: v for k, v in h.items() if k not in ("ok", "last_error")}
        if not h["ok"]:
            return Health(False, str(h["last_error"]), data)
        return Health(True, f"XML phonebook on {h['listen']}, {h['contacts']} contacts", data)
