"""Meeting bodies the calendar sync already read, kept for the write-back so it needs no read of its own.

Why: write-back (plugin.writeback) needs each booked meeting's body and a current change key. Reading them
itself costs one extra round trip per organizer mailbox and pass over EWS (GetItem) and one per meeting
over Graph (GET event): with 1,000 organizers holding one new meeting each that is 1,000 reads beside
1,000 writes (benchmarks/bench_write_back.py). With write-back on, the reads the sync makes anyway bring
the bodies: over EWS the calendar window's GetItem also asks for `item:Body`; Graph's calendarView delta
rows carry the body and changeKey already. The sources keep the bodies of the meetings write-back may
write here, until the write-back step takes them.

Safety does not rest on freshness: the write goes with the change key read together with the body (EWS
NeverOverwrite, Graph If-Match), so an organizer's edit since then fails it with a conflict, whose retry
reads the meeting again (the kept body was taken, so that read goes to Exchange).

Kept: the meetings `plugin.writeback.store.load_candidates` can pick (single meetings, organized by the
mailbox itself) whose location mentions PBX (a cheap pre-filter: a miss only costs the read it saves),
bodies up to KEEP_MAX_CHARS. A mailbox's bodies are dropped when its next calendar sync starts, so nothing
from an earlier pass is used, and memory stays bounded by the PBX meetings of one pass.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from pbxsync.sync.model import Occurrence
from pbxsync.sync.sources.writer import ItemBody

KEEP_MAX_CHARS = 1_000_000  # as plugin.writeback.render.MAX_BODY_CHARS: a larger body is not rewritten anyway


class KeptBodies:
    """Per mailbox: item id -> the body the current sync pass read. Filled from exchangelib's worker threads,
    taken on the event loop: one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, ItemBody]] = {}

    def forget(self, mailbox: str) -> None:
        with self._lock:
            self._bodies.pop(mailbox.lower(), None)

    def keep(self, mailbox: str, read: Iterable[tuple[Occurrence, ItemBody]]) -> None:
        """Keep the bodies of the meetings write-back may write (each occurrence with its body as read)."""
        owner = mailbox.lower()
        kept = {body.item_id: body for occ, body in read
                if occ.recurrence_id is None and not occ.series_item_id and occ.organizer_email == owner
                and "pbx" in occ.location.lower() and len(body.content) <= KEEP_MAX_CHARS}
        with self._lock:
            self._bodies.setdefault(owner, {}).update(kept)

    def take(self, mailbox: str, item_ids: Sequence[str]) -> dict[str, ItemBody]:
        """The kept bodies of `item_ids` (each handed out once)."""
        with self._lock:
            kept = self._bodies.get(mailbox.lower(), {})
            return {i: kept.pop(i) for i in item_ids if i in kept}
