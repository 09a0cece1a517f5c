"""Room admission: booking windows, host/guest, open rooms, PINs (pure rules and over FastAGI)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pbxsync.plugin.agi.identity import caller_identity
from pbxsync.plugin.agi.room import RoomBooking, RoomService, decide_admission, pin_matches, room_bookings
from pbxsync.plugin.agi.server import FastAgiServer
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.config import ConferenceConfig, Config
from pbxsync.sync.store.db import Store
from tests.support.agi import T0, env_block, fake_asterisk, insert_booking, set_variables

EARLY = timedelta(minutes=10)


def booking(start_min: int = 0, end_min: int = 60, room: str = "8001", pin: str | None = None,
            id: int = 1) -> RoomBooking:
    return RoomBooking(id, room, T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min), "101", pin)


@pytest.mark.parametrize(("now_min", "caller", "admit", "profile", "reason"), [
    (0, "101", True, "host", "booked"),
    (30, "102", True, "guest", "booked"),
    (-10, "102", True, "guest", "booked"),  # early-join window
    (-11, "101", False, "guest", "too-early"),
    (60, "101", False, "guest", "not-booked"),  # the end is exclusive
    (30, "", True, "guest", "booked"),
])
def test_decide_admission(now_min: int, caller: str, admit: bool, profile: str, reason: str) -> None:
    d = decide_admission("8001", caller, [booking()], T0 + timedelta(minutes=now_min), EARLY, (), pins=False)
    assert (d.admit, d.profile, d.reason) == (admit, profile, reason)


def test_open_rooms_admit_guests_outside_bookings_and_other_rooms_do_not_count() -> None:
    d = decide_admission("8002", "101", [booking(room="8001")], T0, EARLY, {"8002"}, pins=False)
    assert (d.admit, d.profile, d.reason) == (True, "guest", "open")
    d = decide_admission("8003", "101", [booking(room="8001")], T0, EARLY, {"8002"}, pins=False)
    assert (d.admit, d.reason) == (False, "not-booked")


def test_pin_is_required_only_when_pins_are_on() -> None:
    assert decide_admission("8001", "1", [booking(pin="4242")], T0, EARLY, (), pins=True).pin == "4242"
    assert decide_admission("8001", "1", [booking(pin="4242")], T0, EARLY, (), pins=False).pin is None


def test_pins_on_and_a_booking_without_a_pin_refuses_instead_of_admitting_without_one() -> None:
    d = decide_admission("8001", "101", [booking()], T0, EARLY, (), pins=True)
    assert (d.admit, d.reason, d.booking_id, d.needs_pin) == (False, "no-pin", booking().id, False)
    assert decide_admission("8001", "101", [booking()], T0, EARLY, (), pins=False).admit
    assert pin_matches("4242#", "4242") and pin_matches("4242", "4242")
    assert not pin_matches("4243", "4242") and not pin_matches(None, "4242") and not pin_matches("", "4242")


async def test_room_bookings_reads_scheduled_bookings_of_the_room(store: Store) -> None:
    running = await insert_booking(store, "8001", T0, T0 + timedelta(hours=1))
    await insert_booking(store, "8001", T0, T0 + timedelta(hours=1), state="cancelled", uid="c")
    await insert_booking(store, "8002", T0, T0 + timedelta(hours=1), uid="other-room")
    await insert_booking(store, "8001", T0 - timedelta(hours=2), T0 - timedelta(hours=1), uid="past")
    found = await room_bookings(store, "8001", T0 + timedelta(minutes=5), timedelta(days=1))
    assert [(b.id, b.organizer_extension, b.start, b.pin) for b in found] == [(running, "101", T0, None)]


async def agi_room(store: Store, config: Config, now: datetime, caller: str, answers: list[str] | None = None,
                   room: str = "8001") -> dict[str, str]:
    server = FastAgiServer({"room": RoomService(store, config, FakeClock(now))}, "127.0.0.1", 0)
    await server.start()
    replies = iter(answers or [])

    def answer(command: str) -> str:
        return next(replies) if command.startswith("GET DATA") else "200 result=0" if command == "ANSWER" \
            else "200 result=1"

    try:
        commands = await fake_asterisk(server.port, env_block("room", callerid=caller, arg_1=room), answer)
    finally:
        await server.close()
    variables = set_variables(commands)
    variables["_get_data"] = str(sum(c.startswith("GET DATA") for c in commands))
    return variables


async def test_over_fastagi_host_guest_and_rejection(store: Store) -> None:
    await insert_booking(store, "8001", T0, T0 + timedelta(hours=1))
    config = Config()
    host = await agi_room(store, config, T0, "101")
    assert (host["PBXSYNC_ROOM_ADMIT"], host["PBXSYNC_ROOM_PROFILE"], host["PBXSYNC_ROOM"]) == ("yes", "host", "8001")
    guest = await agi_room(store, config, T0, "555")
    assert (guest["PBXSYNC_ROOM_ADMIT"], guest["PBXSYNC_ROOM_PROFILE"]) == ("yes", "guest")
    late = await agi_room(store, config, T0 + timedelta(hours=2), "101")
    assert (late["PBXSYNC_ROOM_ADMIT"], late["PBXSYNC_ROOM_REASON"]) == ("no", "not-booked")
    hostile = await agi_room(store, config, T0, "101", room='80 01"x')
    assert (hostile["PBXSYNC_ROOM_ADMIT"], hostile["PBXSYNC_ROOM"]) == ("no", "")


async def pin_store(store: Store) -> int:
    booking_id = await insert_booking(store, "8001", T0, T0 + timedelta(hours=1))
    await store.conn.execute("INSERT INTO booking_pins VALUES (?, '4242', '')", (booking_id,))
    return booking_id


async def test_pin_entry(store: Store) -> None:
    await pin_store(store)
    config = Config(conference=ConferenceConfig(pins=True))
    right = await agi_room(store, config, T0, "555", ["200 result=4242"])
    assert (right["PBXSYNC_ROOM_ADMIT"], right["_get_data"]) == ("yes", "1")
    retry = await agi_room(store, config, T0, "555", ["200 result=1111", "200 result=4242#"])
    assert (retry["PBXSYNC_ROOM_ADMIT"], retry["_get_data"]) == ("yes", "2")
    wrong = await agi_room(store, config, T0, "101", ["200 result=1"] * 3)
    assert (wrong["PBXSYNC_ROOM_ADMIT"], wrong["PBXSYNC_ROOM_REASON"], wrong["_get_data"]) == ("no", "wrong-pin", "3")
    silent = await agi_room(store, config, T0, "101", ["200 result= (timeout)"] * 3)
    assert (silent["PBXSYNC_ROOM_ADMIT"], silent["PBXSYNC_ROOM_REASON"]) == ("no", "no-pin")


async def test_ensure_pins_gives_each_running_booking_one(store: Store) -> None:
    from pbxsync.plugin.booking.pins import booking_pin, ensure_pins

    booking_id = await pin_store(store)
    other = await insert_booking(store, "8002", T0, T0 + timedelta(hours=1), uid="u2")
    assert await ensure_pins(store, T0) == 1
    assert await booking_pin(store, booking_id) == "4242"
    pin = await booking_pin(store, other)
    assert pin is not None and len(pin) == 6 and pin.isdigit()
    assert await ensure_pins(store, T0) == 0


@pytest.mark.parametrize(("channel", "callerid", "caller"), [
    ("PJSIP/101-0000002a", "555", "101"),        # a phone's own channel: its endpoint, whatever it claims
    ("PJSIP/mytrunk-0000002b", "101", "mytrunk"),  # an outside caller forging 101 over a trunk
    ("SIP/102-000000ff", "", "102"),
    ("Local/101@from-internal-00000001;2", "101", "101"),  # no device: the caller ID
    ("", " 103 ", "103"),
])
def test_caller_identity_prefers_the_authenticated_device(channel: str, callerid: str, caller: str) -> None:
    assert caller_identity(channel, callerid) == caller


async def test_a_forged_caller_id_over_a_trunk_is_never_the_host(store: Store) -> None:
    await insert_booking(store, "8001", T0, T0 + timedelta(hours=1))
    server = FastAgiServer({"room": RoomService(store, Config(), FakeClock(T0))}, "127.0.0.1", 0)
    await server.start()
    try:
        commands = await fake_asterisk(server.port, env_block("room", callerid="101", arg_1="8001",
                                                              channel="PJSIP/mytrunk-00000007"))
    finally:
        await server.close()
    assert 'SET VARIABLE PBXSYNC_ROOM_PROFILE "guest"' in commands
