"""The XML phonebook is woken right after a sync pass that changed contacts (plugin.phonebook.refresh),
and only then: its polling stays the fallback."""

from __future__ import annotations

from datetime import UTC, datetime

from pbxsync.plugin.daemon.service import Slot
from pbxsync.plugin.phonebook.refresh import Refresh, wake_when_contacts_changed
from pbxsync.sync.engine import FolderResult, PassSummary, UserSummary


def summary(contacts: FolderResult | None, calendar: FolderResult | None = None) -> PassSummary:
    return PassSummary(datetime(2026, 12, 3, tzinfo=UTC), [UserSummary("201", "a@example.com", contacts, calendar)])


async def test_a_pass_that_changed_contacts_wakes_the_running_phonebook() -> None:
    woken: list[str] = []
    slot: Slot[Refresh] = Slot()
    hook = wake_when_contacts_changed(slot)
    await hook(summary(FolderResult(added=1)))  # nothing running yet: nothing to wake
    slot.publish(lambda: woken.append("refresh"))
    for changed in (FolderResult(added=1), FolderResult(updated=2), FolderResult(deleted=3)):
        await hook(summary(changed))
    assert woken == ["refresh"] * 3


async def test_passes_that_changed_no_contact_leave_it_to_its_polling() -> None:
    woken: list[str] = []
    slot: Slot[Refresh] = Slot()
    slot.publish(lambda: woken.append("refresh"))
    hook = wake_when_contacts_changed(slot)
    await hook(summary(None, FolderResult(added=5)))  # a calendar pass
    await hook(summary(FolderResult()))  # contacts unchanged
    await hook(summary(FolderResult(error="timeout")))
    assert woken == []
