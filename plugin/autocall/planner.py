"""The pure call planner: booking, attempts so far, who is in the room, now -> which Originates to send.

Rules (DESIGN.md, issue 4): calls start at the booking's start and, if the agent or AMI was down then,
still within `grace` of it (never after the end); busy, no answer, congestion and unknown outcomes are
retried after `retry_delay` up to `retries` times while the meeting runs; answered and failed are final;
a participant already in the room is never called; an attempt still in flight blocks a new one; the
organizer (host) is called first. Attempt numbers only grow, so every ChannelId is new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pbxsync.plugin.booking.model import Booking, Role, StoredState


class Outcome(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILED = "failed"
    UNKNOWN = "unknown"  # sent, but the link dropped before the OriginateResponse (or the agent restarted)
    NOT_SENT = "not_sent"  # stored, then AMI was down: nothing was dialled; does not count as a try
    CANCELLED = "cancelled"  # hung up by pbxsync: the meeting was cancelled while the phone rang


RETRIED = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.CONGESTION, Outcome.UNKNOWN})


@dataclass(frozen=True)
class Attempt:
    participant_id: int
    attempt: int
    outcome: Outcome
    created_at: datetime
    finished_at: datetime | None = None
    channel_id: str = ""


@dataclass(frozen=True)
class PlannerSettings:
    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=60)
    grace: timedelta = timedelta(minutes=10)
    ring_timeout: timedelta = timedelta(seconds=30)
    in_flight_margin: timedelta = timedelta(seconds=30)  # a pending attempt older than ring+margin is stale


@dataclass(frozen=True)
class PlannedCall:
    booking_id: int
    participant_id: int
    extension: str
    attempt: int
    channel_id: str
    host: bool


@dataclass(frozen=True)
class CallPlan:
    calls: tuple[PlannedCall, ...]
    next_check: datetime | None  # when planning again could yield a call; None: nothing more to do
    finished: bool  # the booking needs no more attention (ended, cancelled, all settled)


def channel_id_for(booking: Booking, participant_id: int, extension: str, attempt: int) -> str:
    """Stable and unique: the same (booking, participant, attempt) always gives the same ChannelId."""
    digest = hashlib.sha256(f"{booking.draft.uid}|{booking.draft.recurrence_key}|{extension}".encode()).hexdigest()
    return f"pbxsync-{booking.id}-{participant_id}-{attempt}-{digest[:8]}"


def plan_calls(booking: Booking, attempts: Sequence[Attempt], in_room: Collection[str], now: datetime,
               settings: PlannerSettings) -> CallPlan:
    """`in_room`: extensions currently in the booking's room."""
    draft = booking.draft
    if draft.state is not StoredState.SCHEDULED or not draft.autocall or not draft.room or now >= draft.end:
        return CallPlan((), None, True)
    if now < draft.start:
        return CallPlan((), draft.start, False)
    by_participant: dict[int, list[Attempt]] = {}
    for a in sorted(attempts, key=lambda a: a.attempt):
        by_participant.setdefault(a.participant_id, []).append(a)
    calls: list[PlannedCall] = []
    waits: list[datetime] = []
    within_grace = now <= draft.start + settings.grace
    people = sorted((p for p in draft.participants if p.call and p.id is not None),
                    key=lambda p: p.role is not Role.HOST)
    for person in people:
        assert person.id is not None
        mine = by_participant.get(person.id, [])
        if person.extension in in_room:
            continue
        # Hung up because the booking was cancelled: not a try (a booking restored later calls again).
        tried = [a for a in mine if a.outcome not in (Outcome.NOT_SENT, Outcome.CANCELLED)]
        next_number = max((a.attempt for a in mine), default=0) + 1
        due: datetime | None = None
        if not tried:
            if within_grace or mine:
                due = now
        else:
            last = tried[-1]
            if last.outcome is Outcome.PENDING:
                stale_at = last.created_at + settings.ring_timeout + settings.in_flight_margin
                if now < stale_at:
                    waits.append(stale_at)
                    continue
                last_done = stale_at
            elif last.outcome in RETRIED:
                last_done = last.finished_at or last.created_at
            else:
                continue  # answered or failed: final
            if len(tried) > settings.retries:
                continue
            due = max(now, last_done + settings.retry_delay)
        if due is None:
            continue
        if due <= now:
            calls.append(PlannedCall(booking.id, person.id, person.extension, next_number,
                                     channel_id_for(booking, person.id, person.extension, next_number),
                                     person.role is Role.HOST))
        elif due < draft.end:
            waits.append(due)
    next_check = min(waits) if waits else None
    return CallPlan(tuple(calls), next_check, not calls and next_check is None)
