"""The AUTOCALL service: an APScheduler job per AUTOCALL booking, a run loop per running meeting, the caller.

- The schedule lives in APScheduler 3.11 (AsyncIOScheduler, memory job store): one `date` job per booking
  at its start. It is rebuilt from the bookings at `start()` and re-armed by `reconcile()` after every sync,
  so a moved booking moves its job and a cancelled one leaves none. SQLite stays the source of truth.
- When a job fires, a run loop re-reads the booking, asks Asterisk who is in the room (ConfbridgeList,
  plus ConfbridgeJoin/Leave events in between), asks the pure planner which calls are due and sends them.
- Each attempt is stored (pending) BEFORE its Originate is written, under a ChannelId derived from
  booking, participant and attempt number. Pending attempts found at start become `unknown`: they may have
  been dialled, so they count as tries and are never re-sent as they are.
- A second job per booking fires `verify_before` ahead of the start and asks the daemon to sync the
  booking's mailboxes once more (`verify`), so a cancellation made since the last timed pass is seen
  before anybody is called. A failed verification changes nothing: a failed fetch never cancels.
- Our calls' channels are followed by their Newchannel/Hangup events. When a booking is cancelled, its
  calls still ringing (or answered but not yet in the room, e.g. at the "press 1" prompt) are hung up
  and recorded as `cancelled`; callers already in the room stay unless `end_conference_on_cancel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from pbxsync.plugin import metrics
from pbxsync.plugin.ami.client import AmiClient, OriginateRequest
from pbxsync.plugin.ami.wire import AmiMessage, callerid, render_dial, validate_room
from pbxsync.plugin.autocall.planner import Outcome, PlannedCall, PlannerSettings, plan_calls
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
from pbxsync.sync.config import Config
from pbxsync.sync.errors import AmiPermissionError, PbxError, ValidationError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.autocall")
JOB_PREFIX = "autocall-"
VERIFY_PREFIX = "verify-"
ROOM_EVENTS = ("ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd")
CHANNEL_EVENTS = ("Newchannel", "Hangup")
CANCELLED_DETAIL = "hung up: the meeting was cancelled"
_OUR_CHANNEL = re.compile(r"pbxsync-([0-9]{1,18})-[0-9]+-[0-9]+-[0-9a-f]{8}")  # see channel_id_for
_REMEMBER_CANCELLED = 3600.0  # seconds a cancelled booking's late channels are still hung up


def booking_of_channel(uniqueid: str) -> int | None:
    """The booking whose call this channel is (our ChannelId: the first or only channel), else None."""
    match = _OUR_CHANNEL.fullmatch(uniqueid)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class AutocallSettings:
    dial_template: str = "PJSIP/{extension}"
    context: str = "pbxsync-autocall"
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    pacing_per_second: float = 0.0
    confirm: bool = False
    end_conference_on_cancel: bool = False
    verify_before: timedelta = timedelta(0)  # 0: no sync pass of the booking's mailboxes before its start
    reconnect_wait: float = 5.0  # how long a due call waits for the AMI link before planning again

    @classmethod
    def from_config(cls, config: Config) -> AutocallSettings:
        a = config.autocall
        return cls(dial_template=config.pbx.dial, context=config.pbx.context,
                   planner=PlannerSettings(retries=a.retries, retry_delay=timedelta(seconds=a.retry_delay_seconds),
                                           grace=timedelta(minutes=a.grace_minutes),
                                           ring_timeout=timedelta(seconds=a.ring_timeout_seconds)),
                   pacing_per_second=a.pacing_per_second, confirm=a.confirm,
                   end_conference_on_cancel=a.end_conference_on_cancel,
                   verify_before=timedelta(seconds=a.verify_before_seconds))


class RoomMembers:
    """Room membership as the ConfBridge events tell it, refreshed from ConfbridgeList when asked."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, AmiMessage]] = {}

    def on_event(self, message: AmiMessage) -> str:
        room = message.get("Conference")
        if message.name == "ConfbridgeJoin":
            self._rooms.setdefault(room, {})[message.get("Uniqueid")] = message
        elif message.name == "ConfbridgeLeave":
            self._rooms.get(room, {}).pop(message.get("Uniqueid"), None)
        elif message.name == "ConfbridgeEnd":
            self._rooms.pop(room, None)
        return room

    def replace(self, room: str, members: Iterable[AmiMessage]) -> None:
        self._rooms[room] = {m.get("Uniqueid"): m for m in members}

    def members(self, room: str) -> list[AmiMessage]:
        return list(self._rooms.get(room, {}).values())


def present_extensions(members: Sequence[AmiMessage], our_channels: Mapping[str, str],
                       extensions: Collection[str], dial_template: str) -> set[str]:
    """Which participants' extensions are in the room: our calls by Uniqueid (= our ChannelId), others
    who dialled in by their channel name (`PJSIP/101-...`) or caller number."""
    prefixes: dict[str, str] = {}
    for ext in extensions:
        with contextlib.suppress(ValidationError):
            prefixes[render_dial(dial_template, ext) + "-"] = ext
    found: set[str] = set()
    for m in members:
        uid = m.get("Uniqueid")
        if uid in our_channels:
            found.add(our_channels[uid])
            continue
        channel = m.get("Channel")
        for prefix, ext in prefixes.items():
            if channel.startswith(prefix):
                found.add(ext)
        if m.get("CallerIDNum") in extensions:
            found.add(m.get("CallerIDNum"))
    return found


@dataclass(frozen=True)
class AutocallHealth:
    scheduled_jobs: int
    running_bookings: int
    calls_in_flight: int
    ami_connected: bool


Verifier = Callable[[Booking], Awaitable[None]]


class AutocallService:
    def __init__(self, store: Store, ami: AmiClient, settings: AutocallSettings, *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 scheduler: AsyncIOScheduler | None = None, verify: Verifier | None = None) -> None:
        self.store = store
        self.verify = verify
        self.ami = ami
        self.settings = settings
        self._now = now
        self.scheduler = scheduler or AsyncIOScheduler(timezone=UTC)
        self.rooms = RoomMembers()
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._run_rooms: dict[int, str] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._kicked: set[int] = set()
        self._live: dict[str, tuple[int, str]] = {}  # our ringing/up channels: Uniqueid -> (booking, name)
        self._cancelled: dict[int, float] = {}  # booking -> when its cancellation was seen (monotonic)
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_channels: Callable[[], None] | None = None
        self._background: set[asyncio.Task[object]] = set()

    # ---- lifecycle (called by the daemon) -----------------------------------------------------------
    async def start(self) -> None:
        settled = await settle_stale_pending(self.store, self._now())
        if settled:
            log.warning("autocall: %d call(s) in flight when the agent stopped are marked unknown, not re-sent",
                        settled)
        self._unsubscribe = self.ami.subscribe(ROOM_EVENTS, self._on_room_event)
        self._unsubscribe_channels = self.ami.subscribe(CHANNEL_EVENTS, self._on_channel_event)
        self.ami.on_connect(self._on_connect)
        if not self.scheduler.running:
            self.scheduler.start()
        await self.reconcile()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
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
        jobs = [j for j in self.scheduler.get_jobs() if j.id.startswith(JOB_PREFIX)] if self.scheduler.running else []
        return AutocallHealth(len(jobs), sum(not t.done() for t in self._runs.values()), len(self._calls),
                              self.ami.connected)

    async def reconcile(self, booking_ids: Iterable[int] = ()) -> None:
        """After every sync (and at start): jobs for exactly the upcoming/running AUTOCALL bookings."""
        now = self._now()
        wanted = {b.id: b for b in await list_bookings(self.store, now)
                  if b.draft.autocall and b.draft.state is StoredState.SCHEDULED and b.draft.room}
        for job in self.scheduler.get_jobs():
            for prefix in (JOB_PREFIX, VERIFY_PREFIX):
                if job.id.startswith(prefix) and int(job.id[len(prefix):]) not in wanted:
                    job.remove()
        for booking_id in {*booking_ids, *self._runs}:
            if booking_id not in wanted:
                await self._retire(booking_id, now)
        for booking_id in wanted:
            self._cancelled.pop(booking_id, None)  # booked again: its calls are wanted
        for booking in wanted.values():
            run = self._runs.get(booking.id)
            if run is not None and not run.done():
                if booking.draft.start > now:  # moved later: stop now, the job fires at the new start
                    run.cancel()
                else:
                    self._wake_booking(booking.id)
                    continue
            self.scheduler.add_job(self._fire, "date", run_date=max(booking.draft.start, now), args=[booking.id],
                                   id=f"{JOB_PREFIX}{booking.id}", replace_existing=True,
                                   misfire_grace_time=None, coalesce=True)
            verify_at = booking.draft.start - self.settings.verify_before
            if self.verify is not None and self.settings.verify_before and verify_at > now:
                self.scheduler.add_job(self._verify, "date", run_date=verify_at, args=[booking.id],
                                       id=f"{VERIFY_PREFIX}{booking.id}", replace_existing=True,
                                       misfire_grace_time=None, coalesce=True)
            else:
                with contextlib.suppress(JobLookupError):
                    self.scheduler.remove_job(f"{VERIFY_PREFIX}{booking.id}")

    # ---- running a booking --------------------------------------------------------------------------
    async def _verify(self, booking_id: int) -> None:
        """Sync the booking's mailboxes once more before its start; the pass re-arms us (reconcile)."""
        booking = await booking_by_id(self.store, booking_id)
        if booking is None or booking.draft.state is not StoredState.SCHEDULED or self.verify is None:
            return
        log.info("autocall: booking %d starts at %s: checking Exchange for late changes", booking_id,
                 booking.draft.start.isoformat())
        try:
            async with asyncio.timeout(self.settings.verify_before.total_seconds()):
                await self.verify(booking)
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
        self._remember_cancelled(booking_id)
        in_room = {m.get("Uniqueid") for m in self.rooms.members(draft.room or "")}
        for uniqueid, (owner, _) in list(self._live.items()):
            if owner == booking_id and uniqueid not in in_room:
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

    def _remember_cancelled(self, booking_id: int) -> None:
        now = time.monotonic()
        for old in [b for b, seen in self._cancelled.items() if now - seen > _REMEMBER_CANCELLED]:
            del self._cancelled[old]
        self._cancelled[booking_id] = now

    async def _hang_up(self, uniqueid: str) -> None:
        """Hang up one of our calls of a cancelled booking (its OriginateResponse then records it)."""
        found = self._live.get(uniqueid)
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
                now = self._now()
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
                    await self.ami.wait_connected(self.settings.reconnect_wait)
                    continue
                await self._send(booking, plan.calls, first=not attempts)
                wait = None if plan.next_check is None else max(0.0, (plan.next_check - now).total_seconds())
                if plan.calls and wait is None:
                    wait = 0.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await wake.wait()
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
                await record_joined(self.store, member.get("Uniqueid"), self._now())
        return present_extensions(self.rooms.members(room), ours, [p.extension for p in booking.draft.participants],
                                  self.settings.dial_template)

    async def _send(self, booking: Booking, calls: Sequence[PlannedCall], *, first: bool = False) -> None:
        """`first`: the booking had no attempt stored before this pass, so its first call is the booking's
        first Originate (the one CALL_START_SKEW measures)."""
        gap = 1.0 / self.settings.pacing_per_second if self.settings.pacing_per_second > 0 else 0.0
        for index, call in enumerate(calls):
            if gap and index:
                await asyncio.sleep(gap)
            if not await record_planned(self.store, call, self._now()):
                continue  # already stored by an earlier pass: never send an attempt twice
            task = asyncio.get_running_loop().create_task(self._call(booking, call, first=first))
            first = False
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    def originate_request(self, booking: Booking, call: PlannedCall) -> OriginateRequest:
        draft = booking.draft
        room = validate_room(draft.room or "")
        confirm = "1" if self.settings.confirm else "0"
        return OriginateRequest(
            channel=render_dial(self.settings.dial_template, call.extension), channel_id=call.channel_id,
            context=self.settings.context,
            variables=(("PBXSYNC_ROOM", room), ("PBXSYNC_ROLE", "host" if call.host else "guest"),
                       ("PBXSYNC_CONFIRM", confirm)),
            caller_id=callerid(draft.subject, room),
            timeout_ms=int(self.settings.planner.ring_timeout.total_seconds() * 1000))

    async def _call(self, booking: Booking, call: PlannedCall, *, first: bool = False) -> None:
        reason = detail = ""
        try:
            request = self.originate_request(booking, call)
            if first:
                metrics.CALL_START_SKEW.observe((self._now() - booking.draft.start).total_seconds())
            result = await self.ami.originate(request)
            outcome, reason, detail = Outcome(result.outcome.value), result.reason, result.detail
        except ValidationError as exc:
            outcome, detail = Outcome.FAILED, str(exc)
            log.error("autocall: booking %d, extension %s: %s", booking.id, call.extension, exc)
        except AmiPermissionError as exc:
            outcome, detail = Outcome.FAILED, str(exc)
            log.error("autocall: %s", exc)
        except PbxError as exc:
            outcome, detail = Outcome.NOT_SENT, str(exc)
        if booking.id in self._cancelled and outcome is not Outcome.ANSWERED and outcome is not Outcome.NOT_SENT:
            outcome, detail = Outcome.CANCELLED, CANCELLED_DETAIL
        log.info("autocall: booking %d, extension %s, attempt %d: %s", booking.id, call.extension, call.attempt,
                 outcome.value)
        await record_outcome(self.store, call.channel_id, outcome, reason, detail, self._now())
        metrics.CALLS.labels(outcome.value).inc()
        self._wake_booking(booking.id)

    # ---- events ---------------------------------------------------------------------------------------
    def _on_room_event(self, message: AmiMessage) -> None:
        room = self.rooms.on_event(message)
        uid = message.get("Uniqueid")
        if message.name == "ConfbridgeJoin" and uid.startswith("pbxsync-"):
            self._spawn(record_joined(self.store, uid, self._now()))
        for booking_id, run_room in list(self._run_rooms.items()):
            if run_room == room:
                self._wake_booking(booking_id)

    def _on_channel_event(self, message: AmiMessage) -> None:
        uniqueid = message.get("Uniqueid")
        booking_id = booking_of_channel(uniqueid)
        if booking_id is None:
            return
        if message.name == "Hangup":
            self._live.pop(uniqueid, None)
            return
        self._live[uniqueid] = (booking_id, message.get("Channel"))
        if booking_id in self._cancelled:  # an Originate that was on its way when the booking was cancelled
            self._spawn(self._hang_up(uniqueid))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _wake_booking(self, booking_id: int) -> None:
        event = self._wake.get(booking_id)
        if event is not None:
            event.set()

    def _on_connect(self) -> None:
        self._live.clear()  # Hangup events may have been missed while the link was down
        self._wake_all()

    def _wake_all(self) -> None:
        for booking_id in list(self._runs):
            self._wake_booking(booking_id)
