"""Issue 17's "Must show" for presence, on the REAL Asterisk 22: a user's custom device state turns busy
when a meeting in the EWS simulator starts and back when it ends, and a call to them during the meeting
reaches voicemail through the shipped context.

The whole daemon runs in-process (its real wiring: sync, bookings, the AMI link, presence, FastAGI) on a
FakeClock, against the EWS simulator (exchangelib unmodified) and a real Asterisk whose AMI user holds the
least-privilege classes of the shipped manager.conf user, with the shipped dialplan/pbxsync-presence.conf
included. The meeting is private: what reaches the phones is pbxsync's own message, never its subject.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxsync.plugin.agi.service import AgiService
from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from tests.support.asterisk_harness import AmiClient, AsteriskInstance
from tests.support.pbxsync_run import MUST_SHOW_USERS
from tests.support.presence import HINTS, VOICEMAIL, blf, getvar, until_value

pytestmark = pytest.mark.asterisk

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "pbxsync-presence.conf"


def organisation() -> Organisation:
    return Organisation.from_dict({
        "domain": "example.com",
        "users": MUST_SHOW_USERS,
        "meetings": [
            {"uid": "must-show-presence", "subject": "Secret: reorganisation, with names", "sensitivity": "private",
             "organizer": {"email": "alice@example.com", "name": "Alice Example"},
             "attendees": [{"email": "carol@example.com", "name": "Carol Jones", "response": "accept"}],
             "start": "today+1d 10:00", "duration_minutes": 60, "timezone": "Europe/Berlin", "show_as": "Busy"},
            {"uid": "must-show-free", "subject": "Lunch (shows as free)", "organizer": {"email": "bob@example.com"},
             "start": "today+1d 10:00", "duration_minutes": 60, "timezone": "Europe/Berlin", "show_as": "Free"},
        ],
    }, source="must-show-presence")


def make_config(tmp_path: Path, ews: EwsSimulator, pbx: AsteriskInstance) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": "svc-pbx@example.com",
                     "password": "svc-pw"},
        "sync": {"interval_minutes": 0},
        "users": [{"extension": "101", "email": "alice@example.com"},
                  {"extension": "102", "email": "bob@example.com"}],
        "pbx": {"host": pbx.host, "port": pbx.port, "username": pbx.user, "secret": pbx.secret},
        "agi": {"listen": "127.0.0.1:0"}, "ldap": {"enabled": False},
        "presence": {"enabled": True, "timezone": "Europe/Berlin"},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
    }, str(tmp_path / "pbxsync.toml"))


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


async def call_101(ami: AmiClient, caller: str) -> None:
    reply = await ami.action("Originate", Channel="Local/101@pbxsync-presence-route", Application="Wait",
                             Data="2", CallerID=f'"Caller" <{caller}>', Async="true")
    assert reply["Response"] == "Success", reply


# The AMI user has only pbxsync's classes (no `dialplan` events): the calls are followed in Asterisk's log.
VOICEMAIL_BUSY = 'VoiceMail("Local/101@pbxsync-presence-route-'
RANG_THE_PHONE = 'Dial("Local/101@pbxsync-presence-route-'


async def test_device_state_busy_during_an_ews_meeting_and_calls_reach_voicemail(
        tmp_path: Path, ews: EwsSimulator, asterisk_factory: Callable[..., AsteriskInstance],
        daemons: list[Daemon]) -> None:
    pbx = asterisk_factory(dialplan_files=[DIALPLAN], extensions=HINTS, extra_files={"voicemail.conf": VOICEMAIL},
                           globals={"PBXSYNC_PHONE_PREFIX": "Local/", "PBXSYNC_PHONE_SUFFIX": "@fake-phones"},
                           ami_read="call,system", ami_write="originate,call,reporting")
    (meeting,) = [m for m in ews.org.meetings("alice@example.com") if m.uid == "must-show-presence"]
    start, end = meeting.start.astimezone(UTC), meeting.end.astimezone(UTC)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    daemon = Daemon(make_config(tmp_path, ews, pbx), clock=clock, stop_timeout=5.0)
    await daemon.start()
    daemons.append(daemon)
    agi = daemon.supervisor.service("agi")
    assert isinstance(agi, AgiService)
    async with pbx.ami() as ami:
        # where the shipped route finds pbxsync's FastAGI (a global, as an admin sets it in [globals])
        assert (await ami.action("Setvar", Variable="PBXSYNC_AGI", Value=f"127.0.0.1:{agi.server.port}"))[
            "Response"] == "Success"
        await until_value(ami, "DEVICE_STATE(Custom:pbxsync-101)", "NOT_INUSE")  # told at start: free
        summary = await daemon.sync_now(None)  # the meeting comes from the EWS simulator
        assert summary.ok, summary

        clock.set(start)
        await until_value(ami, "DEVICE_STATE(Custom:pbxsync-101)", "BUSY")
        assert await getvar(ami, "PRESENCE_STATE(CustomPresence:101,value)") == "dnd"
        message = await getvar(ami, "PRESENCE_STATE(CustomPresence:101,message)")
        assert message == "In a meeting until 11:00"  # Europe/Berlin; never the private subject
        assert await blf(ami) == "Busy"
        assert await getvar(ami, "DEVICE_STATE(Custom:pbxsync-102)") == "NOT_INUSE"  # bob's item shows as free
        await call_101(ami, "5551")
        line = await pbx.await_log(VOICEMAIL_BUSY, timeout=15)
        assert '"101@default,b")' in line, line  # voicemail with the busy greeting
        assert RANG_THE_PHONE not in pbx.log_text()

        clock.set(end)
        await until_value(ami, "DEVICE_STATE(Custom:pbxsync-101)", "NOT_INUSE")
        assert await getvar(ami, "PRESENCE_STATE(CustomPresence:101,value)") == "available"
        await call_101(ami, "5552")
        await pbx.await_log("pbxsync presence: 101 free (SUCCESS), ringing the phone", timeout=15)
        line = await pbx.await_log(RANG_THE_PHONE, timeout=15)
        assert '"Local/101@fake-phones,20")' in line, line
        assert pbx.log_text().count(VOICEMAIL_BUSY) == 1
        assert "reorganisation" not in pbx.log_text()
