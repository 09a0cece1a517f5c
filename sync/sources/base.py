"""The contract every Exchange source fulfils. The sync engine talks only to this."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pbxsync.sync.model import CalendarChanges, CalendarWindow, ContactChanges, GroupMembers


class MailboxSource(Protocol):
    """Reads one Exchange organisation. Methods raise `sync.errors.SourceError` subclasses only.

    `mailbox` is the user's primary SMTP address. Sync states are opaque strings the source made;
    "" means "from the beginning".
    """

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges: ...

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges: ...

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow: ...

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        """Map an internal address (X.500 / legacyExchangeDN) to an SMTP address, or None."""
        ...

    async def expand_group(self, mailbox: str, address: str, *, max_members: int = 200) -> GroupMembers | None:
        """What `address` stands for when it is a group, its people read as `mailbox` (nested groups
        flattened, loops guarded); None when it is not a group. Reads at most `max_members` + 1 people:
        a larger group comes back with `complete=False`."""
        ...

    async def close(self) -> None: ...
