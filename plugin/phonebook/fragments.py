"""Each entry's rendered element, kept per listing format, so a book is a join of cached bytes.

The first fetch of a 500-contact book would otherwise build and serialize 500 ElementTree elements
(several ms, the p99 of a thousand phones fetching after a change). An entry's bytes are keyed by its
packed form (plugin.phonebook.entries `pack`), which holds everything a document shows of it, so a
cached fragment is right for every book the entry is in, whoever asks. Fragments of a contact that
changed are simply never asked for again; the server starts a new `Fragments` with each snapshot.

Bounded to `limit` bytes (with a per-item estimate of the dict's overhead): when full it is emptied and
refilled by the next fetches, cheaper than an LRU's bookkeeping per item for ~100k small ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from pbxsync.plugin.phonebook.entries import unpack
from pbxsync.plugin.phonebook.formats import Listing, PageOf, fragment

_PER_ITEM = 120  # bytes a kept fragment costs beyond its length: the bytes object and the dict's slot


class Fragments:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._by_listing: dict[Listing, dict[str, bytes]] = {}

    def render(self, listing: Listing, page: PageOf, packed: Sequence[str]) -> bytes:
        """`listing.render(page)` for a page whose entries are `packed`, from the fragments kept."""
        if not packed:
            return listing.render(page)
        kept = self._by_listing.setdefault(listing, {})
        parts: list[bytes] = []
        for entry in packed:
            body = kept.get(entry)
            if body is None:
                body = fragment(listing.item(unpack(entry)))
                cost = len(body) + len(entry) + _PER_ITEM
                if self.size + cost > self.limit:
                    self.clear()
                    kept = self._by_listing.setdefault(listing, {})
                if cost <= self.limit:
                    kept[entry] = body
                    self.size += cost
            parts.append(body)
        head, tail = listing.split(page)
        return head + b"".join(parts) + tail

    def clear(self) -> None:
        self._by_listing.clear()
        self.size = 0
