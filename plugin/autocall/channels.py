"""Our calls' channels, followed by their Newchannel/Hangup events, and the bookings cancelled while they rang.

Every call we place has a ChannelId of our own (`channel_id_for`), which Asterisk uses as the Uniqueid of
the call's first (or only) channel, so an event names its booking. A booking cancelled while its calls ring
is remembered for a while: an Originate that was already on its way then shows up as a new channel that
must be hung up too.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pbxsync.plugin.ami.wire import AmiMessage

CHANNEL_EVENTS = ("Newchannel", "Hangup")
_OUR_CHANNEL = re.compile(r"pbxsync-([0-9]{1,18})-[0-9]+-[0-9]+-[0-9a-f]{8}")  # see channel_id_for
REMEMBER_CANCELLED = timedelta(hours=1)  # how long a cancelled booking's late channels are still hung up


def booking_of_channel(uniqueid: str) -> int | None:
    """The booking whose call this channel is (our ChannelId: the first or only channel), else None."""
    match = _OUR_CHANNEL.fullmatch(uniqueid)
    return int(match.group(1)) if match else None


class OurChannels:
    def __init__(self) -> None:
        self.live: dict[str, tuple[int, str]] = {}  # our ringing/up channels: Uniqueid -> (booking, name)
        self._cancelled: dict[int, datetime] = {}  # booking -> when its cancellation was seen

    def on_event(self, message: AmiMessage) -> str | None:
        """Follow one Newchannel/Hangup; returns the Uniqueid of a new channel of a cancelled booking (to
        hang up), else None."""
        uniqueid = message.get("Uniqueid")
        booking_id = booking_of_channel(uniqueid)
        if booking_id is None:
            return None
        if message.name == "Hangup":
            self.live.pop(uniqueid, None)
            return None
        self.live[uniqueid] = (booking_id, message.get("Channel"))
        return uniqueid if booking_id in self._cancelled else None

    def of_booking(self, booking_id: int) -> list[str]:
        return [uniqueid for uniqueid, (owner, _) in self.live.items() if owner == booking_id]

    def cancelled(self, booking_id: int, now: datetime) -> None:
        for old in [b for b, seen in self._cancelled.items() if now - seen > REMEMBER_CANCELLED]:
            del self._cancelled[old]
        self._cancelled[booking_id] = now

    def booked_again(self, booking_id: int) -> None:
        self._cancelled.pop(booking_id, None)

    def is_cancelled(self, booking_id: int) -> bool:
        return booking_id in self._cancelled
