"""Meeting bodies the calendar sync already read, kept for the write-back so it needs no GetItem of its own.

Why: write-back (plugin.writeback) needs each booked meeting's body and a current ChangeKey. Reading them
with a GetItem of its own costs one extra round trip per organizer mailbox and pass: with 1,000 organizers
holding one new meeting each that is 1,000 GetItem beside 1,000 UpdateItem (benchmarks/bench_write_back.py).
With write-back on, the calendar window's GetItem (the one the sync makes anyway) also asks for `item:Body`,
and the bodies of the meetings write-back may write are kept here until the write-back step takes them.

Safety does not rest on freshness: the write goes with the ChangeKey read together with the body, and
NeverOverwrite turns an organizer's edit since then into ErrorIrresolvableConflict, whose retry reads the
meeting again (the kept body was taken, so that read is a real GetItem).

Kept (a cheap pre-filter; a miss only costs the GetItem it saves): single meetings organized by the mailbox
itself whose location mentions PBX, bodies up to KEEP_MAX_CHARS. A mailbox's bodies are dropped when its
next calendar sync starts, so nothing older than the current pass is ever used and memory stays bounded
by the PBX meetings of one window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from exchangelib import HTMLBody

from pbxsync.sync.sources.writer import ItemBody

KEEP_MAX_CHARS = 1_000_000  # as plugin.writeback.render.MAX_BODY_CHARS: a larger body is not rewritten anyway


def item_body(item_id: str, item: Any) -> ItemBody:
    """An exchangelib item's body with its ChangeKey (no body at all counts as an empty HTML one)."""
    body = item.body
    return ItemBody(item_id, str(item.changekey or ""), str(body or ""), isinstance(body, HTMLBody) or body is None)


class KeptBodies:
    """Per mailbox: item id -> the body read by the last calendar window. Written from exchangelib's worker
    threads, taken on the event loop: one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, ItemBody]] = {}

    def forget(self, mailbox: str) -> None:
        with self._lock:
            self._bodies.pop(mailbox.lower(), None)

    def keep(self, mailbox: str, items: Iterable[tuple[Any, str, str]]) -> None:
        """`items`: (exchangelib item, its organizer's address, its location as mapped)."""
        owner = mailbox.lower()
        kept: dict[str, ItemBody] = {}
        for item, organizer, location in items:
            item_id = str(getattr(item, "id", None) or "")
            if (not item_id or getattr(item, "type", None) != "Single" or organizer != owner
                    or "pbx" not in location.lower()):
                continue
            body = item_body(item_id, item)
            if len(body.content) <= KEEP_MAX_CHARS:
                kept[item_id] = body
        with self._lock:
            self._bodies[owner] = kept

    def take(self, mailbox: str, item_ids: Sequence[str]) -> dict[str, ItemBody]:
        """The kept bodies of `item_ids` (each handed out once)."""
        with self._lock:
            kept = self._bodies.get(mailbox.lower(), {})
            return {i: kept.pop(i) for i in item_ids if i in kept}
