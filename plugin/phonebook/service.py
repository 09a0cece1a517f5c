"""The XML phonebook as a daemon part (plugin.daemon.wiring `_phonebook`)."""

from __future__ import annotations

from pbxsync.plugin.daemon.service import Health, Service
from pbxsync.plugin.phonebook.server import PhonebookServer
from pbxsync.sync.config import Config
from pbxsync.sync.store.db import Store


class PhonebookService(Service):
    name = "phonebook"

    def __init__(self, config: Config, store: Store) -> None:
        super().__init__()
        self.server = PhonebookServer(config, store)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        await super().stop()

    def health(self) -> Health:
        h = self.server.health()
        data = {k: v for k, v in h.items() if k not in ("ok", "last_error")}
        if not h["ok"]:
            return Health(False, str(h["last_error"]), data)
        return Health(True, f"XML phonebook on {h['listen']}, {h['contacts']} contacts", data)
