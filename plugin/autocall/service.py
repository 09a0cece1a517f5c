"""The AUTOCALL service: an alarm per AUTOCALL booking, a run loop per running meeting, the caller.

- Every wait follows the daemon's clock (plugin.daemon.clock): the start of each booking and its pre-start
  check are alarms (`Alarms`), rebuilt from the bookings at `start()` and re-armed by `reconcile()` after
  every sync, so a moved booking moves its alarm and a cancelled one leaves none. SQLite stays the source
  of truth. Retries and pacing wait on the same clock, so a test drives all of it with `FakeClock`.
- When the start alarm rings, a run loop re-reads the booking, asks Asterisk who is in the room
  (ConfbridgeList, plus ConfbridgeJoin/Leave events in between: plugin.autocall.presence), asks the pure
  planner which calls are due and sends them (plugin.autocall.calls).
- Each attempt is stored (pending) BEFORE its Originate is written, under a ChannelId derived from
  booking, participant and attempt number. Pending attempts found at start become `unknown`: they may have
  been dialled, so they count as tries and are never re-sent as they are.
- A second alarm per booking rings `verify_before` ahead of the start and asks the daemon to sync the
  booking's mailboxes once more (`verify`), so a cancellation made since the last timed pass is seen
  before anybody is called. A failed verification changes nothing: a failed fetch never cancels.
- Our calls' channels are followed by their Newchannel/Hangup events (plugin.autocall.channels). When a
  booking is cancelled, its calls still ringing (or answered but not yet in the room, e.g. at the "press 1"
  prompt) are hung up and recorded as `cancelled`; callers already in the room stay unless
  `end_conference_on_cancel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pbxsync.plugin import metrics
from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.ami.wire import AmiMessage
from pbxsync.plugin.autocall.alarms import Alarms
from pbxsync.plugin.autocall.calls import place_call
from pbxsync.plugin.autocall.channels import CHANNEL_EVENTS, OurChannels
from pbxsync.plugin.autocall.planner import Outcome, PlannedCall, plan_calls
from pbxsync.plugin.autocall.presence import ROOM_EVENTS, RoomMembers, present_extensions
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.autocall.store import (
    channel_ids,
    drain_writes,
    load_attempts,
    record_joined,
    record_outcome,
    record_planned,
    settle_stale_pending,
)
from pbxsync.plugin.booking.model import Booking, StoredState
from pbxsync.plugin.booking.store import booking_by_id, list_bookings
from pbxsync.plugin.daemon.clock import Clock, SystemClock, until_deadline
from pbxsync.sync.errors import PbxError, ValidationError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.autocall")
START_ALARM = "autocall-"  # + booking id
CHECK_ALARM = "verify-"  # + booking id: the pre-start check
CANCELLED_DETAIL = "hung up: the meeting was cancelled"


@dataclass(frozen=True)
class AutocallHealth:
    scheduled_jobs: int  # bookings whose start alarm has not rung yet
    running_bookings: int
    calls_in_flight: int
    ami_connected: bool


Verifier = Callable[[Booking], Awaitable[None]]


class AutocallService:
    def __init__(self, store: Store, ami: AmiClient, settings: AutocallSettings, *, clock: Clock | None = None,
                 verify: Verifier | None = None) -> None:
        self.store = store
        self.verify = verify
        self.ami = ami
        self.settings = settings
        self.clock = clock or SystemClock()
        self.alarms = Alarms(self.clock)
        self.rooms = RoomMembers()
        self.channels = OurChannels()
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._run_rooms: dict[int, str] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._kicked: set[int] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_channels: Callable[[], None] | None = None
        self._background: set[asyncio.Task[object]] = set()

    # ---- lifecycle (called by the daemon) -----------------------------------------------------------
    async def start(self) -> None:
        settled = await settle_stale_pending(self.store, self.clock.now())
        if settled:
            log.warning("autocall: %d call(s) in flight when the agent stopped are marked unknown, not re-sent",
                        settled)
        self._unsubscribe = self.ami.subscribe(ROOM_EVENTS, self._on_room_event)
        self._unsubscribe_channels = self.ami.subscribe(CHANNEL_EVENTS, self._on_channel_event)
        self.ami.on_connect(self._on_connect)
        await self.reconcile()

    async def stop(self) -> None:
        await self.alarms.close()
        for unsubscribe in (self._unsubscribe, self._unsubscribe_channels):
            if unsubscribe is not None:
                unsubscribe()
        tasks = [*self._runs.values(), *self._calls, *self._background]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await drain_writes()
        self._runs.clear()

    def health(self) -> AutocallHealth:
        starts = [name for name in self.alarms.pending() if name.startswith(START_ALARM)]
        return AutocallHealth(len(starts), sum(not t.done() for t in self._runs.values()), len(self._calls),
                              self.ami.connected)

    async def reconcile(self, booking_ids: Iterable[int] = ()) -> None:
        """After every sync (and at start): alarms for exactly the upcoming/running AUTOCALL bookings."""
        now = self.clock.now()
        wanted = {b.id: b for b in await list_bookings(self.store, now)
                  if b.draft.autocall and b.draft.state is StoredState.SCHEDULED and b.draft.room}
        for name in self.alarms.pending():
            for prefix in (START_ALARM, CHECK_ALARM):
                if name.startswith(prefix) and int(name[len(prefix):]) not in wanted:
                    self.alarms.cancel(name)
        for booking_id in {*booking_ids, *self._runs}:
            if booking_id not in wanted:
                await self._retire(booking_id, now)
        for booking_id in wanted:
            self.channels.booked_again(booking_id)  # its calls are wanted
        for booking in wanted.values():
            run = self._runs.get(booking.id)
            if run is not None and not run.done():
                if booking.draft.start > now:  # moved later: stop now, the alarm rings at the new start
                    run.cancel()
                else:
                    self._wake_booking(booking.id)
                    continue
            self.alarms.set(f"{START_ALARM}{booking.id}", max(booking.draft.start, now),
                            functools.partial(self._fire, booking.id))
            check_at = booking.draft.start - self.settings.verify_before
            if self.verify is not None and self.settings.verify_before and check_at > now:
                self.alarms.set(f"{CHECK_ALARM}{booking.id}", check_at, functools.partial(self._verify, booking.id))
            else:
                self.alarms.cancel(f"{CHECK_ALARM}{booking.id}")

    # ---- running a booking --------------------------------------------------------------------------
    async def _verify(self, booking_id: int) -> None:
        """Sync the booking's mailboxes once more before its start; the pass re-arms us (reconcile)."""
        booking = await booking_by_id(self.store, booking_id)
        if booking is None or booking.draft.state is not StoredState.SCHEDULED or self.verify is None:
            return
        log.info("autocall: booking %d starts at %s: checking Exchange for late changes", booking_id,
                 booking.draft.start.isoformat())
        try:
            await until_deadline(self.clock, booking.draft.start, self.verify(booking))
        except TimeoutError:
            log.warning("autocall: booking %d: the check for late changes did not finish before the start",
                        booking_id)
        except Exception:  # the calls go out as booked: a failed check never cancels
            log.exception("autocall: booking %d: the check for late changes failed", booking_id)

    async def _fire(self, booking_id: int) -> None:
        run = self._runs.get(booking_id)
        if run is not None and not run.done():
            self._wake_booking(booking_id)
            return
        self._runs[booking_id] = asyncio.get_running_loop().create_task(self._run(booking_id),
                                                                          name=f"autocall-{booking_id}")

    async def _retire(self, booking_id: int, now: datetime) -> None:
        run = self._runs.pop(booking_id, None)
        if run is not None:
            run.cancel()
        booking = await booking_by_id(self.store, booking_id)
        if booking is None or booking.draft.state is not StoredState.CANCELLED:
            return
        draft = booking.draft
        log.info("autocall: booking %d cancelled; no further calls", booking_id)
        self.channels.cancelled(booking_id, now)
        in_room = {m.get("Uniqueid") for m in self.rooms.members(draft.room or "")}
        for uniqueid in self.channels.of_booking(booking_id):
            if uniqueid not in in_room:
                await self._hang_up(uniqueid)
        if (self.settings.end_conference_on_cancel and draft.room and draft.start <= now < draft.end
                and booking_id not in self._kicked):
            self._kicked.add(booking_id)
            try:
                kicked = await self.ami.confbridge_kick(draft.room)
                log.info("autocall: cancelled booking %d: conference %s ended (%s)", booking_id, draft.room,
                         "kicked everybody" if kicked else "room was empty")
            except PbxError as exc:
                log.error("autocall: cannot end conference %s of cancelled booking %d: %s", draft.room,
                          booking_id, exc)

    async def _hang_up(self, uniqueid: str) -> None:
        """Hang up one of our calls of a cancelled booking (its OriginateResponse then records it)."""
        found = self.channels.live.get(uniqueid)
        if found is None:
            return
        booking_id, channel = found
        try:
            gone = not await self.ami.hangup(channel)
            log.info("autocall: cancelled booking %d: %s %s", booking_id, channel,
                     "had already hung up" if gone else "hung up")
        except (PbxError, ValidationError) as exc:
            log.error("autocall: cancelled booking %d: cannot hang up %s: %s", booking_id, channel, exc)

    async def _run(self, booking_id: int) -> None:
        wake = self._wake.setdefault(booking_id, asyncio.Event())
        try:
            while True:
                wake.clear()
                booking = await booking_by_id(self.store, booking_id)
                now = self.clock.now()
                if booking is None or booking.draft.start > now:
                    return
                room = booking.draft.room or ""
                self._run_rooms[booking_id] = room
                in_room = await self._present(booking)
                attempts = await load_attempts(self.store, booking_id)
                plan = plan_calls(booking, attempts, in_room, now, self.settings.planner)
                if plan.finished:
                    log.info("autocall: booking %d settled", booking_id)
                    return
                if plan.calls and not self.ami.connected:
                    with contextlib.suppress(TimeoutError):
                        await until_deadline(self.clock, now + timedelta(seconds=self.settings.reconnect_wait),
                                             self.ami.wait_connected())
                    continue
                await self._send(booking, plan.calls, first=not attempts)
                next_check = now if plan.calls and plan.next_check is None else plan.next_check
                with contextlib.suppress(TimeoutError):  # a call's outcome or a room event wakes us earlier
                    await until_deadline(self.clock, next_check, wake.wait())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("autocall: booking %d run failed", booking_id)
        finally:
            self._run_rooms.pop(booking_id, None)
            if self._runs.get(booking_id) is asyncio.current_task():
                self._runs.pop(booking_id, None)

    async def _present(self, booking: Booking) -> set[str]:
        room = booking.draft.room or ""
        if self.ami.connected:
            try:
                self.rooms.replace(room, await self.ami.confbridge_list(room))
            except PbxError as exc:
                log.warning("autocall: ConfbridgeList %s failed (%s); using the join/leave events seen", room, exc)
        ours = await channel_ids(self.store, booking.id)
        for member in self.rooms.members(room):
            if member.get("Uniqueid") in ours:  # e.g. joined while the agent was down: record it
                await record_joined(self.store, member.get("Uniqueid"), self.clock.now())
        return present_extensions(self.rooms.members(room), ours, [p.extension for p in booking.draft.participants],
                                  self.settings.dial_template)

    async def _send(self, booking: Booking, calls: Sequence[PlannedCall], *, first: bool = False) -> None:
        """`first`: the booking had no attempt stored before this pass, so its first call is the booking's
        first Originate (the one CALL_START_SKEW measures)."""
        gap = 1.0 / self.settings.pacing_per_second if self.settings.pacing_per_second > 0 else 0.0
        for index, call in enumerate(calls):
            if gap and index:
                await self.clock.sleep(gap)
            if not await record_planned(self.store, call, self.clock.now()):
                continue  # already stored by an earlier pass: never send an attempt twice
            task = asyncio.get_running_loop().create_task(self._call(booking, call, first=first))
            first = False
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, booking: Booking, call: PlannedCall, *, first: bool = False) -> None:
        def sending() -> None:
            if first:
                metrics.CALL_START_SKEW.observe((self.clock.now() - booking.draft.start).total_seconds())

        result = await place_call(self.ami, self.settings, booking, call, sending)
        outcome, detail = result.outcome, result.detail
        if (self.channels.is_cancelled(booking.id) and outcome is not Outcome.ANSWERED
                and outcome is not Outcome.NOT_SENT):
            outcome, detail = Outcome.CANCELLED, CANCELLED_DETAIL
        log.info("autocall: booking %d, extension %s, attempt %d: %s", booking.id, call.extension, call.attempt,
                 outcome.value)
        await record_outcome(self.store, call.channel_id, outcome, result.reason, detail, self.clock.now())
        metrics.CALLS.labels(outcome.value).inc()
        self._wake_booking(booking.id)

    # ---- events ---------------------------------------------------------------------------------------
    def _on_room_event(self, message: AmiMessage) -> None:
        room = self.rooms.on_event(message)
        uid = message.get("Uniqueid")
        if message.name == "ConfbridgeJoin" and uid.startswith("pbxsync-"):
            self._spawn(record_joined(self.store, uid, self.clock.now()))
        for booking_id, run_room in list(self._run_rooms.items()):
            if run_room == room:
                self._wake_booking(booking_id)

    def _on_channel_event(self, message: AmiMessage) -> None:
        late = self.channels.on_event(message)
        if late is not None:  # an Originate that was on its way when the booking was cancelled
            self._spawn(self._hang_up(late))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _wake_booking(self, booking_id: int) -> None:
        event = self._wake.get(booking_id)
        if event is not None:
            event.set()

    def _on_connect(self) -> None:
        self.channels.live.clear()  # Hangup events may have been missed while the link was down
        self._wake_all()

    def _wake_all(self) -> None:
        for booking_id in list(self._runs):
            self._wake_booking(booking_id)
