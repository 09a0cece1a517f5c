"""`agi://HOST:PORT/room`: may this caller join this conference room now?

The room is the first AGI argument (`AGI(agi://.../room,${EXTEN})`), else `agi_extension`. The caller is
the endpoint of `agi_channel` when that is a phone's own channel (`PJSIP/101-0000002a` -> 101): Asterisk
authenticated that device, whereas a caller ID arrives from outside and can be forged, so an external
caller sending "101" over a trunk (`PJSIP/mytrunk-...`) is never taken for host 101. Only for channels
that name no device (Local/..., created by the dialplan itself) is `agi_callerid` used.

A room is open while a scheduled booking runs in it, from `[conference]
early_join_minutes` before its start until its end. Rooms listed in `[conference] open_rooms` are open
at any time outside bookings too (as guests). When `[conference] pins` is on and the running booking has
a PIN (table booking_pins, migration 0004), the caller is asked for it with GET DATA (three tries) before admission.
Wrong PINs are slowed down per (booking, caller) and per booking (plugin.throttle: a growing wait before the
next prompt, forgiven over time), so guessing a 6-digit PIN takes months, not minutes; too many guesses
waiting on one booking are refused outright (reason wrong-pin). Repeated failures are logged once a minute.

Variables set for the dialplan (every value sanitised):
  PBXSYNC_ROOM_ADMIT    yes | no
  PBXSYNC_ROOM_PROFILE  host (the caller's extension is the organizer's) | guest
  PBXSYNC_ROOM_REASON   booked | open | not-booked | too-early | wrong-pin | no-pin (none entered, or
                        PINs are on and the booking has none yet: refused, never admitted without one)
  PBXSYNC_ROOM_BOOKING  the booking id, or empty
  PBXSYNC_ROOM          the room number (digits/letters only)
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pbxsync.plugin.agi.identity import caller_identity
from pbxsync.plugin.agi.server import AgiSession
from pbxsync.plugin.daemon.clock import Clock
from pbxsync.plugin.throttle import FailureThrottle, Policy, WindowedLog
from pbxsync.sync.config import Config
from pbxsync.sync.model import parse_utc, utc_text
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.agi.room")

PIN_PROMPT = "conf-getpin"  # Asterisk core sounds: "Please enter the conference pin number"
BAD_PIN_PROMPT = "conf-invalidpin"
PIN_TRIES = 3
_ROOM = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
PER_CALLER = Policy(free=3, first=1.0, longest=30.0)
PER_BOOKING = Policy(free=6, first=0.5, longest=10.0)


@dataclass(frozen=True)
class RoomBooking:
    id: int
    room: str
    start: datetime
    end: datetime
    organizer_extension: str
    pin: str | None = None


@dataclass(frozen=True)
class RoomDecision:
    admit: bool
    profile: str  # host | guest
    reason: str
    booking_id: int | None = None
    pin: str | None = None  # the PIN the caller must enter before admission, if any

    @property
    def needs_pin(self) -> bool:
        return self.admit and self.pin is not None


def decide_admission(room: str, caller: str, bookings: Sequence[RoomBooking], now: datetime,
                     early_join: timedelta, open_rooms: Collection[str], pins: bool) -> RoomDecision:
    """Pure: admission for `caller` dialling `room` at `now`, given the room's bookings."""
    running = [b for b in bookings if b.room == room and b.start - early_join <= now < b.end]
    if running:
        booking = min(running, key=lambda b: (b.start, b.id))  # overlap is prevented; be stable anyway
        profile = "host" if caller and caller == booking.organizer_extension else "guest"
        if pins and not booking.pin:
            # PINs are on but this booking has none yet (not generated since it was booked or since PINs
            # were switched on): refuse rather than admit anyone without one.
            return RoomDecision(False, profile, "no-pin", booking.id)
        return RoomDecision(True, profile, "booked", booking.id, booking.pin if pins else None)
    if room in open_rooms:
        return RoomDecision(True, "guest", "open")
    upcoming = [b for b in bookings if b.room == room and now < b.start - early_join]
    return RoomDecision(False, "guest", "too-early" if upcoming else "not-booked")


def pin_matches(entered: str | None, pin: str) -> bool:
    if entered is None:
        return False
    entered = entered.rstrip("#")
    return hmac.compare_digest(entered.encode(), pin.encode())


_BOOKINGS_SQL = """
SELECT b.id, b.room, b.start_utc, b.end_utc, b.organizer_extension, p.pin
FROM bookings b LEFT JOIN booking_pins p ON p.booking_id = b.id
WHERE b.room = :room AND b.state = 'scheduled' AND b.end_utc > :now AND b.start_utc <= :horizon
ORDER BY b.start_utc, b.id
"""


async def room_bookings(store: Store, room: str, now: datetime, look_ahead: timedelta) -> list[RoomBooking]:
    """Scheduled bookings in `room` not yet ended at `now` and starting before `now + look_ahead`."""
    params = {"room": room, "now": utc_text(now), "horizon": utc_text(now + look_ahead)}
    async with store.conn.execute(_BOOKINGS_SQL, params) as cur:
        rows = await cur.fetchall()
    return [RoomBooking(int(r[0]), str(r[1]), parse_utc(str(r[2])), parse_utc(str(r[3])), str(r[4] or ""),
                        str(r[5]) if r[5] else None) for r in rows]


class RoomService:
    """The FastAGI handler for `/room`."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.early_join = timedelta(minutes=max(0, config.conference.early_join_minutes))
        self.open_rooms = frozenset(config.conference.open_rooms)
        self.pins = config.conference.pins
        self.guesses = FailureThrottle()
        self.failures = WindowedLog(60.0)

    async def decide(self, room: str, caller: str) -> RoomDecision:
        now = self.clock.now()
        # look ahead a day so "too-early" can be told apart from "not-booked"
        bookings = await room_bookings(self.store, room, now, self.early_join + timedelta(days=1))
        return decide_admission(room, caller, bookings, now, self.early_join, self.open_rooms, self.pins)

    async def __call__(self, session: AgiSession) -> None:
        request = session.request
        room = (request.args[0] if request.args else request.get("extension")).strip()
        caller = caller_identity(request.get("channel"), request.get("callerid"))
        await session.set_variable("PBXSYNC_ROOM_ADMIT", "no")  # first: any failure below leaves "no"
        if not _ROOM.match(room):
            await self._tell(session, RoomDecision(False, "guest", "not-booked"), "")
            log.info("room request for an invalid room %r refused", room[:32])
            return
        decision = await self.decide(room, caller)
        if decision.needs_pin and decision.pin is not None:
            decision = await self._check_pin(session, decision, decision.pin, caller)
        await self._tell(session, decision, room)
        log.info("room %s: caller %s %s (%s, %s)", room, caller, "admitted" if decision.admit else "refused",
                 decision.reason, decision.profile)

    async def _check_pin(self, session: AgiSession, decision: RoomDecision, pin: str, caller: str) -> RoomDecision:
        await session.answer()
        anything = False
        keys = [(("caller", decision.booking_id, caller), PER_CALLER), (("booking", decision.booking_id), PER_BOOKING)]
        for attempt in range(PIN_TRIES):
            wait = self.guesses.admit(keys, self.clock.now().timestamp())
            if wait is None:  # so many guesses queue on this booking that this one is not even heard
                anything = True
                break
            if wait > 0:
                await self.clock.sleep(wait)
            entered = await session.get_data(PIN_PROMPT if attempt == 0 else BAD_PIN_PROMPT, 8000,
                                             max(len(pin), 1) + 1)
            ok = pin_matches(entered, pin)
            if entered is not None:
                self.guesses.record(keys, ok, self.clock.now().timestamp())
            if ok:
                return decision
            anything = anything or entered is not None
        if anything:
            count = self.failures.note(decision.booking_id, self.clock.now().timestamp())
            if count:
                log.warning("room: %d wrong PIN entr(ies) for booking %s in the last minute (latest from %s)", count,
                            decision.booking_id, caller or "an unknown caller")
        return RoomDecision(False, decision.profile, "wrong-pin" if anything else "no-pin", decision.booking_id)

    async def _tell(self, session: AgiSession, decision: RoomDecision, room: str) -> None:
        await session.set_variable("PBXSYNC_ROOM", room, 32)
        await session.set_variable("PBXSYNC_ROOM_PROFILE", decision.profile)
        await session.set_variable("PBXSYNC_ROOM_REASON", decision.reason)
        await session.set_variable("PBXSYNC_ROOM_BOOKING", str(decision.booking_id or ""))
        await session.set_variable("PBXSYNC_ROOM_ADMIT", "yes" if decision.admit else "no")
