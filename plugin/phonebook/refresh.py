"""Fresh books right after a sync: the daemon's after-pass hook wakes the phonebook's store follower
(and, the same way, the portal's number display forms, plugin.web.number_display).

Kept apart from plugin.phonebook.service so the daemon can install the hook without importing aiohttp.
The phonebook's own polling (`[phonebook] refresh_seconds`) stays as the fallback for what no sync pass
reports: tokens made by `pbxsync phonebook token`, a `pbxsync sync` run from the shell.
"""

from __future__ import annotations

from collections.abc import Callable

from pbxsync.plugin.daemon.service import Slot
from pbxsync.plugin.daemon.sync_timers import AfterPass
from pbxsync.sync.engine import PassSummary

Refresh = Callable[[], None]  # the running server's `refresh` (published while it runs)


def contacts_changed(summary: PassSummary) -> bool:
    return any(u.contacts is not None and (u.contacts.added or u.contacts.updated or u.contacts.deleted)
               for u in summary.users)


def wake_when_contacts_changed(refresh: Slot[Refresh]) -> AfterPass:
    async def refresh_after_pass(summary: PassSummary) -> None:
        wake = refresh.value
        if wake is not None and contacts_changed(summary):
            wake()  # re-reads only if the store changed; the read runs on the follower's thread

    return refresh_after_pass
