"""Which services the daemon runs for a config, and what each depends on.

Each part is one small function here returning its `ServiceSpec`s (none when switched off). Dependencies
point one way: this module imports the parts; no part imports it, and none sees the `DaemonContext`, only
the fields it uses. To add a part: give it a `Service` (in its own package, or an adapter in
plugin.daemon.parts), write `_part(ctx)` returning `[ServiceSpec("name", factory, settings)]` and list it in
`PARTS`. `settings` are the config values the part depends on: after SIGHUP the part is restarted only if
they changed. Hooks to run after each sync pass go into `ctx.after_pass` (in PARTS order: bookings first,
then who needs the bookings).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pbxsync.plugin import metrics
from pbxsync.plugin.agi.service import AgiService, build_agi_server
from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.autocall.service import AutocallService
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.control import ControlService, ControlSocketService, ControlTarget, MetricsService
from pbxsync.plugin.daemon.parts import (
    AmiLinkService,
    AutocallAdapter,
    BrokenPart,
    LdapService,
    bookings_gauge_refresher,
    bookings_hook,
    ldap_refresh_hook,
)
from pbxsync.plugin.daemon.service import ServiceSpec, Slot, fingerprint
from pbxsync.plugin.daemon.sync_timers import AfterPass, SourceFactory, SyncService
from pbxsync.plugin.daemon.voicemail_directory import VoicemailDirectoryService
from pbxsync.plugin.directory import DirectoryEntry
from pbxsync.plugin.ldap.server import LdapServer
from pbxsync.plugin.metrics import Refresher
from pbxsync.plugin.phonebook.refresh import Refresh, wake_when_contacts_changed
from pbxsync.plugin.presence.calendar import PresenceSettings
from pbxsync.plugin.presence.service import PresenceAdapter, PresenceService, presence_refresh_hook
from pbxsync.plugin.writeback.hook import writeback_hook
from pbxsync.sync.config import Config
from pbxsync.sync.engine import PassSummary
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.daemon")


async def _nothing() -> None:
    return None


@dataclass
class DaemonContext:
    """What the wiring gets from the daemon (config, store, clock), and what the parts hand each other."""

    config: Config  # the current one: replaced on reload
    store: Store
    clock: Clock
    target: ControlTarget
    make_source: SourceFactory
    after_pass: list[AfterPass] = field(default_factory=list)  # run after each sync pass, in order
    ami: AmiClient | None = None  # the daemon's one AMI client (see `ami_client`)
    ami_settings: str = ""  # fingerprint of the [pbx] section `ami` was made for
    bookings_gauge: Refresher | None = None  # registered with plugin.metrics until shutdown
    # Offered by running parts, read by others:
    sync: Slot[SyncService] = field(default_factory=Slot)  # for AUTOCALL's pre-start check
    autocall: Slot[AutocallService] = field(default_factory=Slot)  # re-armed by the bookings step
    ldap: Slot[LdapServer] = field(default_factory=Slot)  # refreshed after each pass
    directory_extra: Slot[tuple[DirectoryEntry, ...]] = field(default_factory=Slot)  # Asterisk's voicemail users
    rebook: Slot[AfterPass] = field(default_factory=Slot)  # the bookings step, for the voicemail directory
    web_ami: Slot[AmiClient] = field(default_factory=Slot)  # the AMI client, for the portal's click to call
    presence: Slot[PresenceService] = field(default_factory=Slot)  # re-read after each pass
    phonebook: Slot[Refresh] = field(default_factory=Slot)  # the XML phonebook, woken after a pass
    web_number_forms: Slot[Refresh] = field(default_factory=Slot)  # the portal's number display forms, likewise
    user_settings_changed: Callable[[], Awaitable[None]] = _nothing  # the daemon re-applies users' own settings


def default_source_factory(config: Config) -> MailboxSource:
    from pbxsync.sync.sources.factory import make_source  # EWS or Graph, by config

    return make_source(config)


def _control(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config.control
    specs = []
    if cfg.socket:
        specs.append(ServiceSpec("control", lambda: ControlSocketService(cfg.socket, ctx.target),
                                 cfg.socket, critical=True, binds=(cfg.socket,)))
    listen = cfg.listen
    if listen is not None:
        name = "control-tcp" if cfg.socket else "control"
        specs.append(ServiceSpec(name, lambda: ControlService(listen, cfg.token.reveal(), ctx.target, name),
                                 (listen, cfg.token), critical=True, binds=(str(listen),)))
    metrics_listen = cfg.metrics_listen
    if metrics_listen is not None:
        specs.append(ServiceSpec("metrics", lambda: MetricsService(metrics_listen), metrics_listen,
                                 binds=(str(metrics_listen),)))
    return specs


def _sync(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    settings = (cfg.exchange, cfg.sync, cfg.users)
    return [ServiceSpec("sync", lambda: SyncService(cfg, ctx.store, ctx.clock, ctx.make_source, ctx.after_pass,
                                                    ctx.sync), settings)]


def _bookings(ctx: DaemonContext) -> list[ServiceSpec]:
    """Not a service: a step after each sync pass, and the bookings gauge."""
    hook = bookings_hook(ctx.store, ctx.config, ctx.clock, ctx.directory_extra, ctx.autocall, ctx.sync)
    ctx.after_pass.append(hook)
    # Other parts re-run it when the directory changes between passes (voicemail users fetched after the
    # first pass), so an AUTOCALL invitee known only to Asterisk is not missed until the next timer pass.
    ctx.rebook.publish(hook)
    if ctx.bookings_gauge is None:
        ctx.bookings_gauge = bookings_gauge_refresher(ctx.store)
    metrics.register_refresher(ctx.bookings_gauge)
    return []


def _notices(ctx: DaemonContext) -> list[ServiceSpec]:
    """Not a service: after the bookings step, notices to organizers of rejected meetings (plugin/notices)."""
    from pbxsync.plugin.notices.step import NoticeStep
    from pbxsync.sync.sources.mail import mail_sender_for

    if not ctx.config.meetings.notify_organizer:
        return []
    step = NoticeStep(ctx.config)  # reads the templates now: a missing one shows as a broken part

    async def send_notices_after_pass(summary: PassSummary) -> None:
        sync = ctx.sync.value
        engine = sync.engine if sync is not None else None
        await step.run(ctx.store, ctx.clock.now(), mail_sender_for(engine.source) if engine is not None else None)

    ctx.after_pass.append(send_notices_after_pass)
    return []


def _writeback(ctx: DaemonContext) -> list[ServiceSpec]:
    """Not a service: the "Join by phone" write-back after the bookings step, when switched on."""
    if ctx.config.meetings.write_back:
        ctx.after_pass.append(writeback_hook(ctx.store, ctx.config, ctx.clock, ctx.sync))
    return []


def ami_client(ctx: DaemonContext) -> AmiClient:
    """The daemon's one AMI client, `ctx.ami`: the same object until [pbx] changes.

    Made here rather than in a service so every part that needs it (AUTOCALL, the voicemail directory)
    has it from the start; the "ami" service only starts and stops it.
    """
    key = fingerprint(ctx.config.pbx)
    if ctx.ami is None or ctx.ami_settings != key:
        ctx.ami = AmiClient(AmiSettings.from_config(ctx.config.pbx))
        ctx.ami_settings = key
    return ctx.ami


def _ami(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.pbx.secret:
        log.info("AMI link off: [pbx] secret is not set (AUTOCALL needs it)")
        return []
    client = ami_client(ctx)
    return [ServiceSpec("ami", lambda: AmiLinkService(cfg, client), cfg.pbx)]


def _voicemail_directory(ctx: DaemonContext) -> list[ServiceSpec]:
    """Asterisk's voicemail users as directory entries (`ctx.directory_extra`) for the bookings step."""
    cfg = ctx.config
    if not cfg.pbx.voicemail_directory or not cfg.pbx.secret:
        ctx.directory_extra.clear()  # switched off by a reload: stop matching voicemail users
        return []
    client = ami_client(ctx)
    return [ServiceSpec("voicemail", lambda: VoicemailDirectoryService(
        client, ctx.directory_extra, ctx.rebook, ctx.clock, cfg.pbx.voicemail_refresh_minutes), cfg.pbx)]


def _autocall(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.pbx.secret:
        return []
    client = ami_client(ctx)
    return [ServiceSpec("autocall", lambda: AutocallAdapter(cfg, ctx.store, ctx.clock, client, ctx.sync,
                                                            ctx.autocall), (cfg.pbx, cfg.autocall))]


def _agi(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.agi.enabled:
        return []
    settings = (cfg.agi, cfg.sync.default_region, cfg.users, cfg.conference)
    return [ServiceSpec("agi", lambda: AgiService(build_agi_server(cfg, ctx.store, ctx.clock)), settings,
                        binds=(str(cfg.agi.listen),))]


def _ldap(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.ldap.enabled:
        return []
    ctx.after_pass.append(ldap_refresh_hook(ctx.ldap))
    binds = tuple(str(a) for a in (cfg.ldap.listen, cfg.ldap.ldaps_listen) if a is not None)
    return [ServiceSpec("ldap", lambda: LdapService(cfg, ctx.store, ctx.ldap),
                        (cfg.ldap, cfg.users, cfg.sync.default_region), binds=binds)]


def _web(ctx: DaemonContext) -> list[ServiceSpec]:
    """The web portal; its AMI link is the daemon's (`ctx.web_ami`, refreshed on every reload)."""
    cfg = ctx.config
    if cfg.pbx.secret:
        ctx.web_ami.publish(ami_client(ctx))
    else:
        ctx.web_ami.clear()
    if not cfg.web.enabled:
        return []
    from pbxsync.plugin.web.server import web_service  # aiohttp and Jinja2 load only when the portal is on

    # The portal reads the current config on each request (`lambda: ctx.config`): users and rooms changed by
    # a reload, or by a user's own settings, need no restart; only [web] itself does.
    ctx.after_pass.append(wake_when_contacts_changed(ctx.web_number_forms))
    return [ServiceSpec("web", lambda: web_service(lambda: ctx.config, ctx.store, ctx.clock, ctx.target.sync_now,
                                                   ctx.web_ami, ctx.user_settings_changed,
                                                   daemon_status=ctx.target.status,
                                                   number_forms_wake=ctx.web_number_forms),
                        (cfg.web, cfg.database), binds=(str(cfg.web.listen),))]


def _presence(ctx: DaemonContext) -> list[ServiceSpec]:
    """Device and presence state from the calendar over the AMI link ([presence], issue 17)."""
    cfg = ctx.config
    if not cfg.presence.enabled or not cfg.pbx.secret:
        if cfg.presence.enabled:
            log.warning("presence is on but [pbx] secret is not set: no device/presence state is sent")
        return []
    client = ami_client(ctx)
    ctx.after_pass.append(presence_refresh_hook(ctx.presence))
    settings = PresenceSettings.from_config(cfg)
    return [ServiceSpec("presence", lambda: PresenceAdapter(ctx.store, client, settings, ctx.clock, ctx.presence),
                        (cfg.pbx, cfg.presence, [(u.extension, u.mailbox, u.presence, u.sync_calendar)
                                                 for u in cfg.users]))]


def _phonebook(ctx: DaemonContext) -> list[ServiceSpec]:
    """Vendor XML phonebooks over HTTP, re-read right after a pass changed contacts (and polled)."""
    cfg = ctx.config
    listen = cfg.phonebook.listen
    if listen is None:
        return []
    settings = (cfg.phonebook, cfg.users, cfg.ldap.shared_mailboxes, cfg.ldap.base_dn, cfg.ldap.bind_dn,
                cfg.ldap.bind_password, cfg.sync.default_region)
    from pbxsync.plugin.phonebook.service import PhonebookService  # aiohttp loads only when it is on

    ctx.after_pass.append(wake_when_contacts_changed(ctx.phonebook))
    return [ServiceSpec("phonebook", lambda: PhonebookService(cfg, ctx.store, ctx.phonebook), settings,
                        binds=(str(listen),))]


Part = Callable[[DaemonContext], list[ServiceSpec]]
PARTS: list[Part] = [_control, _sync, _bookings, _notices, _writeback, _ami, _voicemail_directory,
                     _autocall, _agi, _ldap, _web, _presence, _phonebook]


def build_specs(ctx: DaemonContext) -> list[ServiceSpec]:
    # Rebuilt in place, with no await in between: the running sync service holds this very list and reads
    # it at each pass, so steps switched on by a reload (notices, presence, LDAP) or built from the new
    # config (the bookings step's [pbx] rooms) apply from the next pass without restarting the sync.
    ctx.after_pass.clear()
    specs: list[ServiceSpec] = []
    for part in PARTS:
        try:
            specs.extend(part(ctx))
        except Exception as exc:  # one part's broken wiring must not keep the others from running
            name = part.__name__.lstrip("_")
            log.exception("part %s could not be set up", name)
            error = " ".join(str(exc).split())[:200] or type(exc).__name__
            specs.append(ServiceSpec(name, functools.partial(BrokenPart, name, error), ("broken", error)))
    return specs
