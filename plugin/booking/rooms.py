"""Choosing conference rooms so that no two bookings overlap in one room.

Requests are served in priority order (the caller puts running and earlier-created bookings first), so an
earlier booking keeps its room and a later one moves to another free room, or gets a conflict reason.
A booking keeps the room it already has while that room stays allowed and free: a room number people
were told should not change just because a better one became free. A room stops being allowed when the
admin takes it away (out of `[pbx] rooms`, no longer the organizer's room): a booking that is not running
yet then moves to a free allowed room or gets a conflict reason that says why, at the next pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RoomRequest:
    label: str  # how a conflict names this booking, e.g. 'booking 12 "Weekly"'
    start: datetime
    end: datetime
    preferred_room: str  # the organizer's room ("" = none)
    current_room: str | None = None
    pinned: bool = False  # running or past: keeps its current room whatever else happens


@dataclass(frozen=True)
class RoomChoice:
    room: str | None
    conflict: str | None = None
    # The room the booking held that the config no longer allows (the history says why it moved or was
    # rejected; the reason itself stays the plain conflict so that it is the same at every later pass).
    withdrawn: str | None = None


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals [start, end): back-to-back meetings do not overlap."""
    return a_start < b_end and b_start < a_end


class RoomBook:
    """Who holds each room when: a list per room (bookings per room are few)."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)

    def holder(self, room: str, start: datetime, end: datetime) -> str | None:
        for held_start, held_end, label in self._held.get(room, ()):
            if overlaps(start, end, held_start, held_end):
                return label
        return None

    def hold(self, room: str, start: datetime, end: datetime, label: str) -> None:
        self._held[room].append((start, end, label))


def assign_rooms(requests: Sequence[RoomRequest], pool: Sequence[str]) -> list[RoomChoice]:
    book = RoomBook()
    choices: list[RoomChoice] = []
    for req in requests:
        if req.pinned and req.current_room:
            book.hold(req.current_room, req.start, req.end, req.label)
            choices.append(RoomChoice(req.current_room))
            continue
        allowed = [r for r in (req.preferred_room, *pool) if r]
        withdrawn = req.current_room if req.current_room and req.current_room not in allowed else None
        candidates = list(dict.fromkeys(([req.current_room] if req.current_room and not withdrawn else []) + allowed))
        chosen = next((r for r in candidates if book.holder(r, req.start, req.end) is None), None)
        if chosen is not None:
            book.hold(chosen, req.start, req.end, req.label)
            choices.append(RoomChoice(chosen, withdrawn=withdrawn))
            continue
        choices.append(RoomChoice(None, _conflict(req, candidates, book), withdrawn))
    return choices


def _conflict(req: RoomRequest, candidates: list[str], book: RoomBook) -> str:
    if not candidates:
        return "no room: the organizer has no room and [pbx] rooms is empty"
    first = candidates[0]
    holder = book.holder(first, req.start, req.end)
    others = "no other room in [pbx] rooms is free" if len(candidates) > 1 else "[pbx] rooms has no other room"
    return f"room conflict: room {first} is taken by {holder} at that time and {others}"
