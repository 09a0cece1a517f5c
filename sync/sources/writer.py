"""Writing a meeting's body back to Exchange: the contract, and which source can do it.

Only the body is ever written (plugin.writeback puts its "Join by phone" block into it), and only with the
change key / etag it was read with: a write never overwrites a newer edit. Request-level failures raise
`sync.errors.SourceError` subclasses; per-item outcomes come back in the result lists, as exceptions:
`WriteConflictError` (stale change key: read again), `WriteDeniedError` (the mailbox may not be written),
`ItemGoneError` (deleted meanwhile), or another SourceError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pbxsync.sync.errors import SourceError


@dataclass(frozen=True)
class ItemBody:
    """A meeting's body as read (or to be written) with the change key it belongs to."""

    item_id: str
    change_key: str
    content: str
    is_html: bool


class CalendarWriter(Protocol):
    async def read_bodies(self, mailbox: str, item_ids: Sequence[str]) -> list[ItemBody | SourceError]:
        """The bodies of `item_ids` in `mailbox`, in order (an item that cannot be read: its error)."""
        ...

    async def write_bodies(self, mailbox: str, bodies: Sequence[ItemBody], *,
                           notify: bool) -> list[str | SourceError]:
        """Write each body if its change key is still current; the new change key of each, in order.
        `notify`: send the organizer's update to the attendees (where the protocol lets us choose)."""
        ...


def writer_for(source: object) -> CalendarWriter | None:
    """The writer for a sync source: EWS and Graph can write; anything else (a test double) cannot."""
    from pbxsync.sync.sources.ews import EwsSource
    from pbxsync.sync.sources.graph import GraphSource

    if isinstance(source, EwsSource):
        from pbxsync.sync.sources.ews_writer import EwsWriter

        return EwsWriter(source)
    if isinstance(source, GraphSource):
        from pbxsync.sync.sources.graph_writer import GraphWriter

        return GraphWriter(source)
    return None
