"""Adapters that plug the parts without a daemon Service of their own into the supervisor, and the steps
that run after each sync pass.

The AMI link, AUTOCALL, the LDAP phonebook, the bookings step. Each gets exactly what it uses: the config,
the store, the clock, and the `Slot`s through which parts hand each other objects (see
plugin.daemon.wiring.DaemonContext). In the product only the wiring imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pbxsync.plugin import metrics
from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.autocall.store import settle_stale_pending
from pbxsync.plugin.autocall.verify import mailboxes_to_verify
from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.booking.model import Booking
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.service import Health, Service, Slot
from pbxsync.plugin.daemon.sync_timers import AfterPass, SyncService
from pbxsync.plugin.directory import DirectoryEntry
from pbxsync.plugin.ldap.server import LdapServer
from pbxsync.plugin.metrics import Refresher
from pbxsync.sync.config import Config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.daemon")


class BrokenPart(Service):
    """Stands in for a part whose wiring raised: shown as failed in `status`, retried with back-off."""

    def __init__(self, name: str, error: str) -> None:
        super().__init__()
        self.name = name
        self.error = error

    async def start(self) -> None:
        raise RuntimeError(f"cannot be set up: {self.error}")


class AmiLinkService(Service):
    """Runs the daemon's one AMI session (`DaemonContext.ami`, shared with AUTOCALL and others)."""

    name = "ami"

    def __init__(self, config: Config, client: AmiClient) -> None:
        super().__init__()
        self.config = config
        self.client = client
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        # the gauge follows the link as it changes, not only when someone asks for /status
        self._unsubscribe = [self.client.on_connect(lambda: metrics.AMI_CONNECTED.set(1)),
                             self.client.on_disconnect(lambda: metrics.AMI_CONNECTED.set(0))]
        metrics.AMI_CONNECTED.set(1 if self.client.connected else 0)
        self.client.start()  # returns at once; the link logs in and reconnects in the background

    async def stop(self) -> None:
        await self.client.stop()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        metrics.AMI_CONNECTED.set(0)
        await super().stop()

    def health(self) -> Health:
        h = self.client.health()
        metrics.AMI_CONNECTED.set(1 if h.connected else 0)
        where = f"{self.config.pbx.host}:{self.config.pbx.port}"
        data = {"connected": h.connected, "banner": h.banner, "reconnects": h.reconnects,
                "last_error": h.last_error or None}
        if h.connected:
            return Health(True, f"logged in to {where} ({h.banner})", data)
        return Health(False, f"not connected to {where}: {h.last_error or 'connecting'}", data)


class AutocallAdapter(Service):
    """pbxsync.plugin.autocall.service.AutocallService as a daemon service; re-armed after each sync pass."""

    name = "autocall"

    def __init__(self, config: Config, store: Store, clock: Clock, client: AmiClient, sync: Slot[SyncService],
                 published: Slot[AutocallService]) -> None:
        super().__init__()
        self.sync = sync
        self.published = published
        self.store = store
        self.clock = clock
        self.inner = AutocallService(store, client, AutocallSettings.from_config(config), clock=clock,
                                     verify=self._verify)

    async def _verify(self, booking: Booking) -> None:
        """The pre-start check: one more sync pass of the booking's mailboxes (the sync service's hooks then
        re-plan the bookings and re-arm AUTOCALL)."""
        sync = self.sync.value
        if sync is None:
            return
        users = mailboxes_to_verify(sync.config, booking)  # the sync service's config is the current one
        if users:
            await sync.sync_now(users, trigger="pre-start")

    async def start(self) -> None:
        await self.inner.start()
        self.published.publish(self.inner)  # the bookings step re-arms it after each pass

    async def stop(self) -> None:
        self.published.withdraw(self.inner)
        await self.inner.stop()
        # Calls still ringing were cut off: they may have been dialled, so they are recorded as `unknown`
        # now (never re-sent as they are), not left pending for the next start to guess about.
        settled = await settle_stale_pending(self.store, self.clock.now())
        if settled:
            log.info("autocall: %d call(s) still ringing at stop recorded as unknown", settled)
        await super().stop()

    def health(self) -> Health:
        h = self.inner.health()
        data = {"scheduled_jobs": h.scheduled_jobs, "running_bookings": h.running_bookings,
                "calls_in_flight": h.calls_in_flight, "ami_connected": h.ami_connected}
        detail = (f"{h.scheduled_jobs} meeting(s) scheduled, {h.running_bookings} running, "
                  f"{h.calls_in_flight} call(s) in flight")
        if not h.ami_connected:
            return Health(False, detail + "; waiting for the AMI link", data)
        return Health(True, detail, data)


class LdapService(Service):
    """The LDAP phonebook; re-reads the contacts after every sync pass (see `refresh_after_pass`)."""

    name = "ldap"

    def __init__(self, config: Config, store: Store, published: Slot[LdapServer]) -> None:
        super().__init__()
        self.config = config
        self.published = published
        self.server = LdapServer(config, store)

    async def start(self) -> None:
        await self.server.start()
        self.published.publish(self.server)

    async def stop(self) -> None:
        self.published.withdraw(self.server)
        await self.server.stop()
        await super().stop()

    @property
    def address(self) -> str:
        return ":".join(str(p) for p in self.server.addresses[0]) if self.server.addresses else ""

    def health(self) -> Health:
        h = self.server.health()
        data = {"listen": self.address, "contacts": h.get("contacts"), "connections": h.get("connections"),
                "searches": h.get("searches"), "index_builds": h.get("index_builds"),
                "index_build_seconds": h.get("index_build_seconds"), "index_mb": h.get("index_mb")}
        if not h.get("ok", True):
            return Health(False, str(h.get("last_error")), data)
        return Health(True, f"LDAP on {self.address}, {h.get('contacts')} contacts", data)


def ldap_refresh_hook(ldap: Slot[LdapServer]) -> AfterPass:
    async def refresh_after_pass(summary: PassSummary) -> None:
        server = ldap.value
        if server is not None and any(u.contacts is not None and u.contacts.ok for u in summary.users):
            server.refresh()

    return refresh_after_pass


def bookings_hook(store: Store, config: Config, clock: Clock, directory_extra: Slot[tuple[DirectoryEntry, ...]],
                  autocall: Slot[AutocallService], sync: Slot[SyncService] | None = None) -> AfterPass:
    """After each pass: bookings and PINs (plugin.booking.after_sync, as `pbxsync sync` does), then AUTOCALL
    re-arm. `directory_extra`: directory entries from other sources (Asterisk voicemail users), if any.
    `sync`: the sync service, whose source looks up invited addresses that may be groups."""

    async def reconcile_after_pass(summary: PassSummary) -> None:
        engine = sync.value.engine if sync is not None and sync.value is not None else None
        result = await update_bookings(store, config, clock.now(), directory_extra.value or (),
                                       engine.source if engine is not None else None)
        for action, n in (("create", result.created), ("update", result.updated), ("cancel", result.cancelled),
                          ("reject", result.rejected)):
            if n:
                metrics.BOOKING_CHANGES.labels(action).inc(n)
        service = autocall.value
        if service is not None and result.changed:
            await service.reconcile(result.booking_ids)

    return reconcile_after_pass


def bookings_gauge_refresher(store: Store) -> Refresher:
    """Sets pbxsync_bookings{state} and pbxsync_call_attempts{outcome} from the store at scrape time."""

    async def refresh() -> None:
        async with store.conn.execute("SELECT state, count(*) FROM bookings GROUP BY state") as cur:
            bookings = {str(state): int(n) for state, n in await cur.fetchall()}
        for state in {"scheduled", "cancelled", "rejected", *bookings}:
            metrics.BOOKINGS.labels(state).set(bookings.get(state, 0))
        async with store.conn.execute("SELECT outcome, count(*) FROM autocall_attempts GROUP BY outcome") as cur:
            attempts = {str(outcome): int(n) for outcome, n in await cur.fetchall()}
        for outcome in {"answered", "busy", "no_answer", "congestion", "failed", "unknown", *attempts}:
            metrics.CALL_ATTEMPTS.labels(outcome).set(attempts.get(outcome, 0))

    return refresh
