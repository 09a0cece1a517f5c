"""A mailbox source that has nothing new: for daemon tests that need passes, not data."""

from __future__ import annotations

from datetime import datetime

from pbxsync.sync.model import CalendarChanges, CalendarWindow, ContactChanges


class QuietSource:
    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        return ContactChanges(sync_state="s")

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges:
        return CalendarChanges(sync_state="c")

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        return CalendarWindow(start, end)

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        return None

    async def close(self) -> None:
        pass
