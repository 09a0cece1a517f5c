"""The FastAGI services on a real Asterisk 22 with the shipped dialplan/pbxsync-agi.conf."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.agi.server import FastAgiServer
from pbxsync.plugin.agi.service import build_agi_server
from pbxsync.sync.config import AgiConfig, ConferenceConfig, Config, SyncConfig, UserConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.store.db import Store
from tests.support.agi import add_contact, insert_booking
from tests.support.asterisk_harness import AmiClient, AsteriskInstance

pytestmark = pytest.mark.asterisk

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "pbxsync-agi.conf"

USER_EVENT = ("UserEvent(PbxsyncCallerId,Name: ${CALLERID(name)},Num: ${CALLERID(num)},"
              "Source: ${PBXSYNC_CALLERID_SOURCE},Status: ${AGISTATUS})")
TEST_CONTEXTS = f"""
[test-inbound]
exten => _X.,1,Gosub(pbxsync-callerid,s,1(${{EXTEN}}))
 same => n,{USER_EVENT}
 same => n,Answer()
 same => n,Hangup()
"""

CONFBRIDGE = """
[pbxsync_bridge]
type=bridge
max_members=20

[pbxsync_host]
type=user
admin=yes
marked=yes
quiet=yes

[pbxsync_guest]
type=user
quiet=yes
"""

NOW = datetime.now(UTC).replace(microsecond=0)


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def make_config(pins: bool = False) -> Config:
    return Config(
        sync=SyncConfig(default_region="DE"),
        agi=AgiConfig(listen=ListenAddress("127.0.0.1", 0)),
        conference=ConferenceConfig(early_join_minutes=10, pins=pins),
        users=[UserConfig(extension="101", email=["alice@example.com"], name="Alice Admin"),
               UserConfig(extension="102", email=["bob@example.com"], name="Bob Builder")],
    )


@pytest.fixture
def store(store_on_disk: Store) -> Store:
    return store_on_disk


async def start_agi(store: Store, config: Config) -> FastAgiServer:
    server = build_agi_server(config, store, WallClock())
    await server.start()
    return server


def start_pbx(factory: Callable[..., AsteriskInstance], agi_port: int) -> AsteriskInstance:
    return factory(globals={"PBXSYNC_AGI": f"127.0.0.1:{agi_port}"}, dialplan_files=[DIALPLAN],
                   extensions=TEST_CONTEXTS, confbridge=CONFBRIDGE)


_call_ids = itertools.count(1)


async def inbound_call(ami: AmiClient, caller_num: str, caller_name: str = "Trunk Caller") -> dict[str, str]:
    """A call from `caller_num` to extension 101 through the caller-ID lookup; the UserEvent it raises."""
    marker = f"c{next(_call_ids)}"
    reply = await ami.action("Originate", Channel="Local/101@test-inbound", Application="Wait", Data="1",
                             CallerID=f'"{caller_name}" <{caller_num}>', Async="true", Variable=f"MARK={marker}")
    assert reply["Response"] == "Success", reply
    return await ami.wait_event(lambda e: e.get("UserEvent") == "PbxsyncCallerId" and e.get("Num") == caller_num
                                and e not in seen_events, timeout=15)


seen_events: list[dict[str, str]] = []


async def test_contact_number_in_another_format_gets_the_contact_name(
    store: Store, asterisk_factory: Callable[..., AsteriskInstance]
) -> None:
    await add_contact(store, "alice@example.com", "Erika Mustermann", "+49 30 1234-4711")
    server = await start_agi(store, make_config())
    try:
        pbx = start_pbx(asterisk_factory, server.port)
        async with pbx.ami() as ami:
            known = await inbound_call(ami, "03012344711")
            seen_events.append(known)
            assert (known["Name"], known["Source"], known["Status"]) == ("Erika Mustermann", "contact", "SUCCESS")
            unknown = await inbound_call(ami, "03099999999", "Keep Me")
            seen_events.append(unknown)
            assert (unknown["Name"], unknown["Source"], unknown["Status"]) == ("Keep Me", "none", "SUCCESS")
            internal = await inbound_call(ami, "102", "")
            seen_events.append(internal)
            assert (internal["Name"], internal["Source"]) == ("Bob Builder", "extension")
        assert server.served == 3
    finally:
        await server.close()


async def test_call_completes_when_pbxsync_is_down(
    store: Store, asterisk_factory: Callable[..., AsteriskInstance]
) -> None:
    await add_contact(store, "alice@example.com", "Erika Mustermann", "+49 30 1234-4711")
    server = await start_agi(store, make_config())
    port = server.port
    await server.close()  # pbxsync is down: nothing listens on its port any more
    pbx = start_pbx(asterisk_factory, port)
    async with pbx.ami() as ami:
        event = await inbound_call(ami, "03012344711", "Original Name")
        seen_events.append(event)
        assert (event["Name"], event["Source"], event["Status"]) == ("Original Name", "none", "FAILURE")
        hangup = await ami.wait_event(lambda e: e.get("Event") == "Hangup" and "test-inbound" in e.get("Channel", ""))
        assert hangup["Cause"] == "16"  # normal clearing: the dialplan ran to its end


async def room_call(ami: AmiClient, caller: str, room: str = "8001") -> str:
    # The calling side plays a tone: media flowing is what lets Asterisk deliver queued DTMF digits.
    reply = await ami.action("Originate", Channel=f"Local/{room}@pbxsync-room", Application="Milliwatt",
                             CallerID=f'"Caller {caller}" <{caller}>', Async="true")
    assert reply["Response"] == "Success", reply
    return caller


def joined(caller: str) -> Callable[[dict[str, str]], bool]:
    return lambda e: e.get("Event") == "ConfbridgeJoin" and e.get("CallerIDNum") == caller


async def test_room_dial_in_admits_by_booking_with_profile(
    store: Store, asterisk_factory: Callable[..., AsteriskInstance]
) -> None:
    await insert_booking(store, "8001", NOW - timedelta(minutes=5), NOW + timedelta(hours=1), organizer="101")
    await insert_booking(store, "8002", NOW + timedelta(hours=3), NOW + timedelta(hours=4), uid="later")
    server = await start_agi(store, make_config())
    try:
        pbx = start_pbx(asterisk_factory, server.port)
        async with pbx.ami() as ami:
            await room_call(ami, "101")
            host = await ami.wait_event(joined("101"), timeout=15)
            assert (host["Conference"], host["Admin"]) == ("8001", "Yes")
            await room_call(ami, "102")
            guest = await ami.wait_event(joined("102"), timeout=15)
            assert (guest["Conference"], guest["Admin"]) == ("8001", "No")
            await room_call(ami, "101", room="8002")  # booked, but hours ahead
            await pbx.await_log("pbxsync room 8002 refused: SUCCESS too-early", timeout=15)
            await room_call(ami, "101", room="8003")  # never booked
            await pbx.await_log("pbxsync room 8003 refused: SUCCESS not-booked", timeout=15)
            members = await ami.action_list("ConfbridgeList", Conference="8001")
            assert sorted(m["CallerIDNum"] for m in members) == ["101", "102"]
            assert not any(e.get("Event") == "ConfbridgeJoin" and e.get("Conference") in ("8002", "8003")
                           for e in ami.events)
    finally:
        await server.close()


async def test_room_is_refused_when_pbxsync_is_down(
    store: Store, asterisk_factory: Callable[..., AsteriskInstance]
) -> None:
    server = await start_agi(store, make_config())
    port = server.port
    await server.close()
    pbx = start_pbx(asterisk_factory, port)
    async with pbx.ami() as ami:
        await room_call(ami, "101")
        await pbx.await_log("pbxsync room 8001 refused: FAILURE unavailable", timeout=15)


async def enter_digits_at_prompt(ami: AmiClient, digits: str, handled: set[str]) -> None:
    """Wait until the AGI runs GET DATA (the next one not yet handled), then key in `digits` there."""
    event = await ami.wait_event(lambda e: e.get("Event") == "AGIExecStart" and "GET DATA" in e.get("Command", "")
                                 and e.get("CommandId", "") not in handled, timeout=15)
    handled.add(event["CommandId"])
    for digit in digits:
        reply = await ami.action("PlayDTMF", Channel=event["Channel"], Digit=digit, Duration="80", Receive="true")
        assert reply["Response"] == "Success", reply


async def test_room_pin_right_and_wrong(store: Store, asterisk_factory: Callable[..., AsteriskInstance]) -> None:
    booking_id = await insert_booking(store, "8001", NOW - timedelta(minutes=5), NOW + timedelta(hours=1))
    await store.conn.execute("INSERT OR REPLACE INTO booking_pins VALUES (?, '4242', '')", (booking_id,))
    server = await start_agi(store, make_config(pins=True))
    try:
        pbx = start_pbx(asterisk_factory, server.port)
        async with pbx.ami() as ami:
            handled: set[str] = set()
            await room_call(ami, "555")
            for _ in range(3):
                await enter_digits_at_prompt(ami, "1111#", handled)
            await pbx.await_log("pbxsync room 8001 refused: SUCCESS wrong-pin", timeout=15)
            await room_call(ami, "556")
            await enter_digits_at_prompt(ami, "4242#", handled)
            guest = await ami.wait_event(joined("556"), timeout=15)
            assert guest["Admin"] == "No"
            assert not any(joined("555")(e) for e in ami.events)
    finally:
        await server.close()


async def test_trunk_context_looks_up_and_continues_in_the_inbound_context(
    store: Store, asterisk_factory: Callable[..., AsteriskInstance]
) -> None:
    await add_contact(store, "alice@example.com", "Erika Mustermann", "+49 30 1234-4711")
    server = await start_agi(store, make_config())
    try:
        pbx = asterisk_factory(
            globals={"PBXSYNC_AGI": f"127.0.0.1:{server.port}", "PBXSYNC_INBOUND_CONTEXT": "test-routes"},
            dialplan_files=[DIALPLAN],
            extensions="[test-routes]\nexten => _X.,1,UserEvent(PbxsyncRouted,Exten: ${EXTEN},"
                       "Name: ${CALLERID(name)})\n same => n,Hangup()\n")
        async with pbx.ami() as ami:
            reply = await ami.action("Originate", Channel="Local/4930555@pbxsync-inbound", Application="Wait",
                                     Data="1", CallerID='"Trunk" <03012344711>', Async="true")
            assert reply["Response"] == "Success"
            routed = await ami.wait_event(lambda e: e.get("UserEvent") == "PbxsyncRouted", timeout=15)
            assert (routed["Exten"], routed["Name"]) == ("4930555", "Erika Mustermann")
    finally:
        await server.close()
