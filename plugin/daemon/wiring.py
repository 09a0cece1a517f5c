"""Which services the daemon runs for a config, and what each depends on.

Each part is one small function returning its `ServiceSpec`s (or none when disabled or not installed).
To add a part: write `part_specs(ctx)` returning `[ServiceSpec("name", factory, settings)]` (in the
part's own module, like plugin.agi.service.agi_specs) and list it in `PARTS`. `settings` are the config
values the part depends on: after SIGHUP the part is restarted only if they changed. A part may put
objects for other parts in `ctx.shared` (the AMI link is `shared["ami"]`) and hooks to run after each
sync pass in `ctx.after_pass` (they run in PARTS order: bookings first, then who needs the bookings).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pbxsync.plugin import metrics
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.daemon.control import ControlService, ControlTarget, MetricsService
from pbxsync.plugin.daemon.parts import (
    AmiLinkService,
    AutocallAdapter,
    BrokenPart,
    LdapService,
    bookings_gauge_refresher,
    bookings_hook,
    ldap_refresh_hook,
)
from pbxsync.plugin.daemon.service import ServiceSpec, fingerprint
from pbxsync.plugin.daemon.sync_timers import AfterPass, SourceFactory, SyncService
from pbxsync.sync.config import Config
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.daemon")


@dataclass
class DaemonContext:
    """What the parts get from the daemon: the current config, the store, the clock, shared objects."""

    config: Config
    store: Store
    clock: Clock
    target: ControlTarget
    make_source: SourceFactory
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. "ami": the AMI link, used by several parts
    after_pass: list[AfterPass] = field(default_factory=list)  # run after each sync pass, in order


def default_source_factory(config: Config) -> MailboxSource:
    from pbxsync.sync.sources.factory import make_source  # EWS or Graph, by config

    return make_source(config)


def part_available(module: str) -> bool:
    """True if a part's module is in this tree; a part that is not is simply not started."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return False
        raise
    return True


def _control(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config.control
    specs = [ServiceSpec("control", lambda: ControlService(cfg.listen, ctx.target), cfg.listen, critical=True)]
    metrics_listen = cfg.metrics_listen
    if metrics_listen is not None:
        specs.append(ServiceSpec("metrics", lambda: MetricsService(metrics_listen), metrics_listen))
    return specs


def _sync(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    settings = (cfg.exchange, cfg.sync, cfg.users)
    return [ServiceSpec("sync", lambda: SyncService(cfg, ctx.store, ctx.clock, ctx.make_source, ctx.after_pass,
                                                    ctx.shared), settings)]


def _bookings(ctx: DaemonContext) -> list[ServiceSpec]:
    """Not a service: a step after each sync pass, and the bookings gauge."""
    ctx.after_pass.append(bookings_hook(ctx.store, ctx.config, ctx.clock, ctx.shared))
    metrics.register_refresher(ctx.shared.setdefault("bookings_gauge", bookings_gauge_refresher(ctx.store)))
    return []


def ami_client(ctx: DaemonContext) -> Any:
    """The daemon's one AMI client, `ctx.shared["ami"]`: the same object until [pbx] changes.

    Made here rather than in a service so every part that needs it (AUTOCALL, the voicemail directory)
    has it from the start; the "ami" service only starts and stops it.
    """
    key = fingerprint(ctx.config.pbx)
    if ctx.shared.get("ami_key") != key:
        from pbxsync.plugin.ami.client import AmiClient, AmiSettings

        ctx.shared["ami"] = AmiClient(AmiSettings.from_config(ctx.config.pbx))
        ctx.shared["ami_key"] = key
    return ctx.shared["ami"]


def _ami(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.pbx.secret or not part_available("pbxsync.plugin.ami.client"):
        log.info("AMI link off: [pbx] secret is not set (AUTOCALL needs it)")
        return []
    client = ami_client(ctx)
    return [ServiceSpec("ami", lambda: AmiLinkService(cfg, client), cfg.pbx)]


def _voicemail_directory(ctx: DaemonContext) -> list[ServiceSpec]:
    """Asterisk's voicemail users as directory entries (`shared["directory_extra"]`) for the bookings step."""
    cfg = ctx.config
    if not cfg.pbx.voicemail_directory or not cfg.pbx.secret or not part_available("pbxsync.plugin.ami.client"):
        ctx.shared.pop("directory_extra", None)  # switched off by a reload: stop matching voicemail users
        return []
    from pbxsync.plugin.daemon.voicemail_directory import VoicemailDirectoryService

    client = ami_client(ctx)
    return [ServiceSpec("voicemail", lambda: VoicemailDirectoryService(
        client, ctx.shared, ctx.clock, cfg.pbx.voicemail_refresh_minutes), cfg.pbx)]


def _autocall(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.pbx.secret or not part_available("pbxsync.plugin.autocall.service"):
        return []
    module = importlib.import_module("pbxsync.plugin.autocall.service")
    if hasattr(module, "autocall_specs"):  # the part brings its own wiring
        specs: list[ServiceSpec] = module.autocall_specs(ctx)
        return specs
    client = ami_client(ctx)
    return [ServiceSpec("autocall", lambda: AutocallAdapter(cfg, ctx.store, ctx.clock, client, ctx.shared),
                        (cfg.pbx, cfg.autocall))]


def _agi(ctx: DaemonContext) -> list[ServiceSpec]:
    if not ctx.config.agi.enabled or not part_available("pbxsync.plugin.agi.service"):
        return []
    specs: list[ServiceSpec] = importlib.import_module("pbxsync.plugin.agi.service").agi_specs(ctx)
    return specs


def _ldap(ctx: DaemonContext) -> list[ServiceSpec]:
    cfg = ctx.config
    if not cfg.ldap.enabled or not part_available("pbxsync.plugin.ldap.server"):
        return []
    ctx.after_pass.append(ldap_refresh_hook(ctx.shared))
    return [ServiceSpec("ldap", lambda: LdapService(cfg, ctx.store, ctx.shared),
                        (cfg.ldap, cfg.users, cfg.sync.default_region))]


Part = Callable[[DaemonContext], list[ServiceSpec]]
PARTS: list[Part] = [_control, _sync, _bookings, _ami, _voicemail_directory, _autocall, _agi, _ldap]


def build_specs(ctx: DaemonContext) -> list[ServiceSpec]:
    ctx.after_pass.clear()  # rebuilt in place: a running sync service sees the new hooks
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
