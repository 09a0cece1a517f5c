"""The portal as a part of the daemon: `[web] enabled` starts it, "Sync now" reaches the daemon's sync
service, and a user's own settings reach the parts that read per-user options."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import aiohttp
import pytest

from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.sync_timers import SyncService
from pbxsync.plugin.user_settings import save_choices
from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.server import WebService
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.model import Contact, ContactChanges, PhoneKind
from pbxsync.sync.phones import phone_number
from tests.support.quiet_source import QuietSource
from tests.support.waiting import until

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def make_config(tmp_path: Path) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"username": "svc@example.com", "server": "http://127.0.0.1:1/EWS/Exchange.asmx"},
        "sync": {"interval_minutes": 0},
        "users": [{"extension": "101", "email": "alice@example.com"},
                  {"extension": "102", "email": "bob@example.com", "room": "801"}],
        "pbx": {"rooms": ["800", "801", "802"]},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
        "agi": {"enabled": False}, "ldap": {"enabled": False},
        "web": {"enabled": True, "listen": "127.0.0.1:0", "user_settings": ["sync_calendar", "room"]},
    }, str(tmp_path / "pbxsync.toml"))


@pytest.fixture
async def daemon(tmp_path: Path, daemons: list[Daemon]) -> Daemon:
    running = Daemon(make_config(tmp_path), make_source=lambda _c: QuietSource())
    await running.start()
    daemons.append(running)  # shut down by the shared fixture
    return running


def sync_service(daemon: Daemon) -> SyncService:
    running = daemon.supervisor.service("sync")
    assert isinstance(running, SyncService), "the sync service is not running"
    return running


async def test_the_portal_starts_with_a_new_private_signing_key(daemon: Daemon, tmp_path: Path) -> None:
    web = daemon.supervisor.service("web")
    assert isinstance(web, WebService) and web.health().ok
    key = tmp_path / "web-secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(bytes.fromhex(key.read_text().strip())) == 32


async def test_sync_now_from_the_portal_runs_a_pass_in_the_daemon(daemon: Daemon) -> None:
    web = daemon.supervisor.service("web")
    assert isinstance(web, WebService)
    await accounts.set_password(daemon.store, "102", "bob's portal password", daemon.clock.now())
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # 127.0.0.1 cookies
        form = await (await session.get(f"{web.url}signin")).text()
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)  # type: ignore[union-attr]
        await session.post(f"{web.url}signin", data={"csrf": token, "extension": "102",
                                                     "password": "bob's portal password"})
        page = await (await session.get(f"{web.url}users/102/sync")).text()
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
        before = sync_service(daemon).passes
        started = await session.post(f"{web.url}users/102/sync",
                                     headers={"X-CSRF-Token": token, "Accept": "application/json"})
        assert started.status == 202
        job = web.ctx.sync_jobs.latest("102")
        assert job is not None and job.task is not None
        await job.task
    assert job.failed is None and sync_service(daemon).passes == before + 1


async def test_a_users_own_settings_reach_the_sync_service_and_bookings(daemon: Daemon) -> None:
    await save_choices(daemon.store, "102", {"sync_calendar": False, "room": "802", "sync_contacts": False},
                       daemon.clock.now())
    before = sync_service(daemon)
    await daemon.apply_user_settings()
    await until(lambda: daemon.supervisor.service("sync") not in (None, before))  # restarted with the choices
    bob = sync_service(daemon).config.user_by_extension("102")
    assert bob is not None
    # allowed choices win over the file; sync_contacts is not in [web] user_settings: the file's value stays
    assert (bob.sync_calendar, bob.room, bob.sync_contacts) == (False, "802", True)
    assert daemon.config.user_by_extension("102").room == "801"  # type: ignore[union-attr]  # the file's, kept
    web = daemon.supervisor.service("web")
    assert isinstance(web, WebService) and web.ctx.config.user_by_extension("102").room == "802"  # type: ignore[union-attr]


class OneContactSource(QuietSource):
    """Bob's mailbox holds one contact with a number."""

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        if mailbox != "bob@example.com" or sync_state:
            return ContactChanges(sync_state="s")
        return ContactChanges((Contact("c1", "ck1", "Carla Kunde",
                                       phones=(phone_number(PhoneKind.BUSINESS, "030 1234 5678", "DE"),)),),
                              sync_state="s")


async def test_a_pass_that_brings_contacts_has_their_numbers_formatted_for_the_portal(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    running = Daemon(make_config(tmp_path), make_source=lambda _c: OneContactSource())
    await running.start()
    daemons.append(running)
    web = running.supervisor.service("web")
    assert isinstance(web, WebService)
    await sync_service(running).sync_now()  # its after-pass hook wakes the portal's filler
    await web.number_forms.idle()
    async with running.store.conn.execute("SELECT national, international FROM contact_phones") as cur:
        assert await cur.fetchall() == [("030 12345678", "+49 30 12345678")]
