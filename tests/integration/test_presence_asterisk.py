"""Presence on the real Asterisk 22: custom device and presence state over AMI, and the shipped presence route.

The presence service and the /presence AGI run on a FakeClock: a meeting's start and end are reached by
moving it, never by waiting for wall time. Asterisk's answers are awaited (with deadlines) as they come.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.agi.service import build_agi_server
from pbxsync.plugin.ami.client import AmiClient as ProductAmiClient
from pbxsync.plugin.ami.client import AmiSettings
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.presence.calendar import PresenceSettings
from pbxsync.plugin.presence.service import PresenceService
from pbxsync.sync.config import Config
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store
from tests.support.asterisk_harness import AmiClient, AsteriskInstance
from tests.support.presence import (
    HINTS,
    SETVAR_EVENTS,
    SETVAR_EXCHANGES,
    VOICEMAIL,
    blf,
    delete_item,
    getvar,
    occurrence,
    presence_config,
    store_items,
    until_value,
)

pytestmark = pytest.mark.asterisk

PRESENCE_DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "pbxsync-presence.conf"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
USERS = {"101": "alice@example.com", "102": "bob@example.com"}


def least_privilege(factory: Callable[..., AsteriskInstance], **options: object) -> AsteriskInstance:
    """An Asterisk whose AMI user holds the classes of the shipped manager.conf user, no more."""
    return factory(ami_read="call,system", ami_write="originate,call,reporting", **options)


@pytest.fixture
async def product_client() -> AsyncIterator[list[ProductAmiClient]]:
    made: list[ProductAmiClient] = []
    yield made
    for client in made:
        await client.stop()


async def connected(pbx: AsteriskInstance, made: list[ProductAmiClient]) -> ProductAmiClient:
    client = ProductAmiClient(AmiSettings(host=pbx.host, port=pbx.port, username=pbx.user,
                                          secret=Secret(pbx.secret), action_timeout=10.0))
    made.append(client)
    client.start()
    assert await client.wait_connected(15)
    return client


async def test_setvar_and_getvar_of_the_custom_states_answer_as_the_simulator_is_held_to(
        asterisk_factory: Callable[..., AsteriskInstance]) -> None:
    pbx = least_privilege(asterisk_factory)
    async with pbx.ami() as ami:
        for action, headers, expected in SETVAR_EXCHANGES:
            reply = await ami.action(action, **headers)
            assert {k: v for k, v in reply.items() if k != "ActionID"} == expected, (action, headers)
        await ami.wait_event(lambda e: e.get("Event") == "PresenceStateChange" and e.get("Status") == "available")
        changes = [e for e in ami.events if e.get("Event") in ("DeviceStateChange", "PresenceStateChange")]
        assert [{k: e.get(k) for k in want} for e, want in zip(changes, SETVAR_EVENTS, strict=True)] == SETVAR_EVENTS


async def test_device_and_presence_state_follow_a_meetings_start_end_and_cancellation(
        store: Store, asterisk_factory: Callable[..., AsteriskInstance],
        product_client: list[ProductAmiClient]) -> None:
    pbx = least_privilege(asterisk_factory, extensions=HINTS)
    clock = FakeClock(T0 - timedelta(minutes=10))
    await store_items(store, "alice@example.com", occurrence("m1", T0, T0 + timedelta(minutes=30)),
                      occurrence("m2", T0 + timedelta(hours=1), T0 + timedelta(hours=2)), now=clock.now())
    client = await connected(pbx, product_client)
    service = PresenceService(store, client, PresenceSettings.from_config(presence_config(USERS)), clock)
    await service.start()
    try:
        async with pbx.ami() as ami:
            assert await getvar(ami, "DEVICE_STATE(Custom:pbxsync-101)") == "NOT_INUSE"
            assert await getvar(ami, "PRESENCE_STATE(CustomPresence:101,value)") == "available"
            clock.set(T0)
            await until_value(ami, "DEVICE_STATE(Custom:pbxsync-101)", "BUSY")
            await until_value(ami, "PRESENCE_STATE(CustomPresence:101,value)", "dnd")
            assert await getvar(ami, "PRESENCE_STATE(CustomPresence:101,message)") == "In a meeting until 09:30"
            assert await getvar(ami, "DEVICE_STATE(Custom:pbxsync-102)") == "NOT_INUSE"
            assert await blf(ami) == "Busy"
            clock.set(T0 + timedelta(minutes=30))
            await until_value(ami, "DEVICE_STATE(Custom:pbxsync-101)", "NOT_INUSE")
            # The device state is set first, the presence state right after: on a loaded host it can lag.
            await until_value(ami, "PRESENCE_STATE(CustomPresence:101,value)", "available")
            clock.set(T0 + timedelta(hours=1))
            await until_value(ami, "DEVICE_STATE(Custom:pbxsync-101)", "BUSY")
            await delete_item(store, "alice@example.com", "m2", clock.now())  # cancelled by its organizer
            await service.refresh()  # the after-pass step
            assert await getvar(ami, "DEVICE_STATE(Custom:pbxsync-101)") == "NOT_INUSE"
            assert await getvar(ami, "PRESENCE_STATE(CustomPresence:101,value)") == "available"
            assert await blf(ami) == "Idle"
    finally:
        await service.stop()


def agi_config(users: dict[str, str], forward: dict[str, str] | None = None) -> Config:
    config = presence_config(users, forward=forward)
    return replace(config, agi=replace(config.agi, listen=ListenAddress("127.0.0.1", 0)))


async def route_call(ami: AmiClient, extension: str, marker: str) -> None:
    reply = await ami.action("Originate", Channel=f"Local/{extension}@pbxsync-presence-route", Application="Wait",
                             Data="2", CallerID=f'"Caller" <{marker}>', Async="true")
    assert reply["Response"] == "Success", reply


def reached(app: str, context: str, caller: str) -> Callable[[dict[str, str]], bool]:
    return lambda e: (e.get("Event") == "Newexten" and e.get("Application") == app and e.get("Context") == context
                      and e.get("CallerIDNum") == caller)


async def test_the_presence_route_sends_a_call_to_voicemail_during_a_meeting_and_to_the_phone_after(
        store: Store, asterisk_factory: Callable[..., AsteriskInstance]) -> None:
    clock = FakeClock(T0 + timedelta(minutes=5))
    await store_items(store, "alice@example.com", occurrence("m1", T0, T0 + timedelta(minutes=30)), now=T0)
    await store_items(store, "bob@example.com", occurrence("m2", T0, T0 + timedelta(minutes=30)), now=T0)
    server = build_agi_server(agi_config(USERS, forward={"102": "101"}), store, clock)
    await server.start()
    try:
        pbx = asterisk_factory(
            globals={"PBXSYNC_AGI": f"127.0.0.1:{server.port}", "PBXSYNC_PHONE_PREFIX": "Local/",
                     "PBXSYNC_PHONE_SUFFIX": "@fake-phones", "PBXSYNC_RING_SECONDS": "5"},
            dialplan_files=[PRESENCE_DIALPLAN], extra_files={"voicemail.conf": VOICEMAIL})
        async with pbx.ami() as ami:
            await route_call(ami, "101", "5001")
            await ami.wait_event(reached("VoiceMail", "pbxsync-presence-route", "5001"), timeout=15)
            line = await pbx.await_log("pbxsync presence: 101 busy (busy) until 09:30")
            assert "until 09:30" in line
            await route_call(ami, "102", "5002")  # bob is busy too, and forwards to alice's phone
            await ami.wait_event(lambda e: e.get("Event") == "Newexten" and e.get("Context") == "fake-phones"
                                 and e.get("Exten") == "101", timeout=15)
            clock.set(T0 + timedelta(minutes=30))
            await route_call(ami, "101", "5003")
            await ami.wait_event(reached("Dial", "pbxsync-presence-route", "5003"), timeout=15)
            await pbx.await_log("pbxsync presence: 101 free (SUCCESS), ringing the phone")
            assert not any(reached("VoiceMail", "pbxsync-presence-route", "5003")(e) for e in ami.events)
        assert server.served == 3
    finally:
        await server.close()
