"""The daemon's voicemail directory part (`[pbx] voicemail_directory = true`) against the AMI simulator.

The daemon runs in-process with a FakeClock (the refresh period is moved forward by hand), the EWS
simulator holds a `PBX` meeting whose invitee dave@example.com is not in [[users]] but may be an Asterisk
voicemail user, and the AMI simulator serves VoicemailUsersList.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser, VoicemailUser
from pbxsync.plugin.booking.model import Booking
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.daemon.service import Slot
from pbxsync.plugin.daemon.sync_timers import AfterPass
from pbxsync.plugin.daemon.voicemail_directory import VoicemailDirectoryService
from pbxsync.plugin.directory import DirectoryEntry
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.errors import PbxError
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation

AMI_USER, AMI_SECRET = "pbxsync", "ami-secret"
DAVE = VoicemailUser("150", "Dave Voicemail", "Dave@Example.com")


def organisation() -> Organisation:
    return Organisation.from_dict({
        "domain": "example.com",
        "users": [
            {"email": "alice@example.com", "name": "Alice Example", "password": "alice-pw"},
            {"email": "svc-pbx@example.com", "name": "PBX service", "password": "svc-pw", "can_impersonate": True},
        ],
        "meetings": [
            {"uid": "vm-meeting", "subject": "Planning", "location": "PBX",
             "organizer": {"email": "alice@example.com", "name": "Alice Example"},
             "attendees": [{"email": "dave@example.com", "name": "Dave", "response": "accept"}],
             "start": "today+1d 10:00", "duration_minutes": 30, "timezone": "Europe/Berlin"},
        ],
    }, source="voicemail-test")


def make_config(tmp_path: Path, ews: EwsSimulator, ami_port: int, **pbx: Any) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": "svc-pbx@example.com",
                     "password": "svc-pw"},
        "sync": {"interval_minutes": 0},
        "users": [{"extension": "101", "email": "alice@example.com", "room": "8001"}],
        "pbx": {"port": ami_port, "username": AMI_USER, "secret": AMI_SECRET, "voicemail_directory": True,
                "voicemail_refresh_minutes": 30, **pbx},
        "agi": {"enabled": False}, "ldap": {"enabled": False},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
    }, str(tmp_path / "pbxsync.toml"))


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


async def simulator(user: SimUser) -> AsteriskSimulator:
    sim = AsteriskSimulator(users=[user], login_fail_delay=0.0)
    await sim.start()
    return sim


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)  # polling interval


async def parked_within(clock: FakeClock, seconds: float) -> None:
    """Until some task sleeps on `clock` for at most `seconds` more: advancing before the retry parks would be
    lost (the failure is counted before the service goes to sleep)."""
    def parked() -> bool:
        wake = clock.next_wakeup()
        return wake is not None and wake <= clock.now() + timedelta(seconds=seconds)
    await until(parked)


async def start_daemon(daemons: list[Daemon], config: Config, clock: FakeClock) -> VoicemailDirectoryService:
    daemon = Daemon(config, clock=clock, stop_timeout=5.0)
    await daemon.start()
    daemons.append(daemon)
    service = daemon.supervisor.service("voicemail")
    assert isinstance(service, VoicemailDirectoryService)
    return service


async def the_booking(daemon: Daemon) -> Booking:
    (booking,) = await list_bookings(daemon.store, daemon.clock.now())
    return booking


async def test_a_voicemail_only_invitee_is_matched_as_soon_as_the_directory_refresh_finds_them(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator, daemons: list[Daemon],
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(datetime.now(UTC))
    with caplog.at_level(logging.INFO, logger="pbxsync.daemon.voicemail"):
        service = await start_daemon(daemons, make_config(tmp_path, ews, ami.port), clock)
        daemon = daemons[0]
        await until(lambda: service.fetches == 1)  # first fetch as soon as the AMI link is up
        assert daemon.ctx is not None and daemon.ctx.directory_extra.value == ()
        await daemon.sync_now(None)
        booking = await the_booking(daemon)
        assert [p.extension for p in booking.draft.participants] == ["101"]
        assert booking.draft.unmatched == ("dave@example.com",)

        # Dave gets a voicemail box; the next refresh (30 minutes later) finds him, the next pass matches him.
        ami.voicemail.append(DAVE)
        clock.advance(29 * 60)
        await asyncio.sleep(0)
        assert service.fetches == 1
        clock.advance(60)
        await until(lambda: service.fetches == 2)
        assert daemon.ctx.directory_extra.value == (
            DirectoryEntry("150", ("dave@example.com",), "Dave Voicemail", source="voicemail"),)
        # No sync pass needed: a changed directory re-runs the bookings at once (an AUTOCALL before the
        # next timer pass must not miss him).

        async def dave_is_in() -> bool:
            return any(p.extension == "150" for p in (await the_booking(daemon)).draft.participants)

        deadline = asyncio.get_running_loop().time() + 10
        while not await dave_is_in():
            assert asyncio.get_running_loop().time() < deadline, "the refresh did not re-run the bookings"
            await asyncio.sleep(0.01)
    booking = await the_booking(daemon)
    assert {p.extension: p.email for p in booking.draft.participants} == {
        "101": "alice@example.com", "150": "dave@example.com"}
    assert booking.draft.unmatched == ()
    summaries = [r.getMessage() for r in caplog.records if r.name == "pbxsync.daemon.voicemail"]
    assert summaries == ["voicemail directory: 0 voicemail users from Asterisk, 0 with an e-mail address",
                         "voicemail directory: 1 voicemail users from Asterisk, 1 with an e-mail address"]
    health = service.health()
    assert health.ok and health.data["entries"] == 1 and health.data["failures"] == 0
    assert daemon.status()["ok"] is True


async def test_config_users_win_over_voicemail_users(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator, daemons: list[Daemon]) -> None:
    ami.voicemail.extend([VoicemailUser("101", "Someone Else", "dave@example.com"), DAVE])
    clock = FakeClock(datetime.now(UTC))
    service = await start_daemon(daemons, make_config(tmp_path, ews, ami.port), clock)
    await until(lambda: service.fetches == 1)
    await daemons[0].sync_now(None)
    booking = await the_booking(daemons[0])
    # 101 stays alice (config); dave's address is taken by the voicemail user on a free extension
    assert {p.extension: p.email for p in booking.draft.participants} == {
        "101": "alice@example.com", "150": "dave@example.com"}


async def test_a_missing_permission_is_one_line_and_the_daemon_keeps_running(
        tmp_path: Path, ews: EwsSimulator, daemons: list[Daemon], caplog: pytest.LogCaptureFixture) -> None:
    ami = await simulator(SimUser(AMI_USER, AMI_SECRET, frozenset({"call", "system"}), frozenset({"originate"})))
    try:
        ami.voicemail.append(DAVE)
        clock = FakeClock(datetime.now(UTC))
        with caplog.at_level(logging.WARNING, logger="pbxsync.daemon.voicemail"):
            service = await start_daemon(daemons, make_config(tmp_path, ews, ami.port), clock)
            await until(lambda: service.failures == 1)
            await parked_within(clock, 60)
            clock.advance(60)  # retried after a minute, same error: not logged again
            await until(lambda: service.failures == 2)
        warnings = [r.getMessage() for r in caplog.records if r.name == "pbxsync.daemon.voicemail"]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith("voicemail directory: fetch failed, keeping 0 entries: ")
        assert "VoicemailUsersList" in warnings[0] and "write=" in warnings[0]
        health = service.health()
        assert not health.ok and health.detail.startswith("last fetch failed: ")
        assert daemons[0].ctx is not None and daemons[0].ctx.directory_extra.value is None
        await daemons[0].sync_now(None)  # the pass still books the meeting, without the voicemail users
        booking = await the_booking(daemons[0])
        assert booking.draft.unmatched == ("dave@example.com",)
    finally:
        await ami.stop()


async def test_switched_off_by_a_reload_the_voicemail_users_are_no_longer_used(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator, daemons: list[Daemon]) -> None:
    ami.voicemail.append(DAVE)
    config = make_config(tmp_path, ews, ami.port)
    off = make_config(tmp_path, ews, ami.port, voicemail_directory=False)
    daemon = Daemon(config, clock=FakeClock(datetime.now(UTC)), stop_timeout=5.0, config_loader=lambda _p: off)
    await daemon.start()
    daemons.append(daemon)
    service = daemon.supervisor.service("voicemail")
    assert isinstance(service, VoicemailDirectoryService)
    await until(lambda: service.fetches == 1)
    assert await daemon.reload()
    assert daemon.ctx is not None and daemon.ctx.directory_extra.value is None
    assert "voicemail" not in daemon.supervisor.names
    await daemon.sync_now(None)
    assert (await the_booking(daemon)).draft.unmatched == ("dave@example.com",)


class ScriptedAmi:
    """Stands in for the AMI link: always connected."""

    async def wait_connected(self, within: float | None = None) -> bool:
        return True


def scripted_fetch(results: list[Sequence[DirectoryEntry] | Exception]) -> Callable[
        [AmiClient], Awaitable[Sequence[DirectoryEntry]]]:
    async def fetch(_ami: AmiClient) -> Sequence[DirectoryEntry]:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    return fetch


async def test_a_failed_refresh_keeps_the_old_entries_and_is_retried_sooner() -> None:
    eve = DirectoryEntry("160", ("eve@example.com",), "Eve", source="voicemail")
    frank = DirectoryEntry("170", ("frank@example.com",), "Frank", source="voicemail")
    shared: Slot[tuple[DirectoryEntry, ...]] = Slot()
    clock = FakeClock()
    service = VoicemailDirectoryService(
        cast(AmiClient, ScriptedAmi()), shared, Slot[AfterPass](), clock, refresh_minutes=30,
        fetch=scripted_fetch([[eve], PbxError("AMI link to 127.0.0.1:5038 is down"), [eve, frank]]))
    runner = asyncio.create_task(service.run())
    try:
        await until(lambda: service.fetches == 1)
        assert shared.value == (eve,)
        clock.advance(30 * 60)
        await until(lambda: service.failures == 1)
        assert shared.value == (eve,) and service.entries == (eve,)
        assert not service.health().ok and "is down" in service.health().detail
        await parked_within(clock, 60)
        clock.advance(60)  # retried after a minute, not after the whole refresh period
        await until(lambda: service.fetches == 2)
        assert shared.value == (eve, frank) and service.health().ok
    finally:
        await service.stop()
        await asyncio.wait_for(runner, 5)


async def test_a_restarted_service_starts_from_the_entries_already_fetched() -> None:
    eve = DirectoryEntry("160", ("eve@example.com",), "Eve", source="voicemail")
    shared: Slot[tuple[DirectoryEntry, ...]] = Slot()
    shared.publish((eve,))
    service = VoicemailDirectoryService(cast(AmiClient, ScriptedAmi()), shared, Slot[AfterPass](), FakeClock(),
                                        refresh_minutes=0,
                                        fetch=scripted_fetch([PbxError("timeout")]))
    runner = asyncio.create_task(service.run())
    try:
        await until(lambda: service.failures == 1)
        assert shared.value == (eve,) and service.health().data["entries"] == 1
    finally:
        await service.stop()
        await asyncio.wait_for(runner, 5)
