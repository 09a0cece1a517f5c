"""Which mailboxes to sync once more just before an AUTOCALL meeting starts (see AutocallService)."""

from __future__ import annotations

from pbxsync.plugin.booking.model import Booking
from pbxsync.sync.config import Config, UserConfig

MAX_MAILBOXES = 10  # a big meeting with an outside organizer: a sample of invitees' calendars is enough


def mailboxes_to_verify(config: Config, booking: Booking) -> list[UserConfig]:
    """The organizer's mailbox when pbxsync syncs its calendar (the organizer's copy is the truth); else
    the invitees' that it syncs, since an outside organizer's cancellation arrives in their calendars."""
    def synced(extension: str | None) -> UserConfig | None:
        user = config.user_by_extension(extension) if extension else None
        return user if user is not None and user.sync_calendar else None

    organizer = synced(booking.draft.organizer_extension)
    if organizer is not None:
        return [organizer]
    found: list[UserConfig] = []
    for person in booking.draft.participants:
        user = synced(person.extension)
        if user is not None and user not in found:
            found.append(user)
    return found[:MAX_MAILBOXES]
