"""Which booking rejections an organizer is told about, as stable reason codes.

A booking's `reason` is the planner's text for the admin (plugin/booking/planner.py, rooms.py). A notice
needs a code instead: the text of a room conflict names the *other* booking (whose subject is not the
organizer's business) and changes whenever that other booking does, yet for the organizer it is one
reason, "no room is free", told once. The reasons the planner produces:

- all-day event, ends before it starts, no duration: the organizer can fix the meeting;
- room conflict / no room at all: no room of the organizer or of `[pbx] rooms` is free;
- the organizer is not a PBX user / has no address: no notice, there is no PBX user to tell.

Anything else (a reason added to the planner later) is told as "other" with the admin's text.
"""

from __future__ import annotations

from pbxsync.plugin.booking.planner import (
    ALL_DAY,
    ENDS_BEFORE_START,
    NO_DURATION,
    NO_ORGANIZER,
    organizer_not_a_user,
)

ALL_DAY_CODE = "all_day"
ENDS_BEFORE_START_CODE = "ends_before_start"
NO_DURATION_CODE = "no_duration"
NO_ROOM_CODE = "no_room"
OTHER_CODE = "other"
CODES = (ALL_DAY_CODE, ENDS_BEFORE_START_CODE, NO_DURATION_CODE, NO_ROOM_CODE, OTHER_CODE)

_EXACT = {ALL_DAY: ALL_DAY_CODE, ENDS_BEFORE_START: ENDS_BEFORE_START_CODE, NO_DURATION: NO_DURATION_CODE}
_NOT_A_USER = organizer_not_a_user("\0").split("\0")  # "the organizer X is not a PBX user", around X


def reason_code(reason: str | None) -> str | None:
    """The code of a rejection reason; None when no organizer is to be told."""
    if not reason or reason == NO_ORGANIZER:
        return None
    if reason.startswith(_NOT_A_USER[0]) and reason.endswith(_NOT_A_USER[1]):
        return None
    if reason in _EXACT:
        return _EXACT[reason]
    if reason.startswith(("room conflict:", "no room:")):
        return NO_ROOM_CODE
    return OTHER_CODE
