"""Meeting bodies over Microsoft Graph: GET /users/{id}/events/{id}?$select=body, PATCH with If-Match.

The PATCH carries the etag the body was read with (`If-Match: W/"<changeKey>"`): an organizer's newer
edit fails it with 412 instead of being overwritten. Graph sends the organizer's update to the attendees
itself (there is no save-only update of a meeting with attendees), so `notify` cannot be honoured here;
docs/meetings.md says so. Runs through the source's GraphClient: its per-mailbox limits, Retry-After and
error mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from pbxsync.sync.errors import ItemGoneError, SourceAccessError, SourceError, WriteConflictError, WriteDeniedError
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.graph_client import GraphNotFoundError, GraphRequestError, user_path
from pbxsync.sync.sources.graph_mapping import event_body
from pbxsync.sync.sources.writer import ItemBody


class GraphWriter:
    def __init__(self, source: GraphSource) -> None:
        self.source = source
        self.client = source.client

    def _url(self, mailbox: str, item_id: str) -> str:
        return self.client.url(f"{user_path(mailbox)}/events/{quote(item_id, safe='')}")

    async def read_bodies(self, mailbox: str, item_ids: Sequence[str]) -> list[ItemBody | SourceError]:
        """The bodies the calendar sync kept (sync.sources.kept_bodies) without a request; GET for the rest."""
        kept = self.source.kept_bodies.take(mailbox, item_ids) if self.source.kept_bodies is not None else {}
        out: list[ItemBody | SourceError] = []
        for item_id in item_ids:
            if item_id in kept:
                out.append(kept[item_id])
                continue
            try:
                event = await self.client.get_json(mailbox, self._url(mailbox, item_id) + "?$select=body")
            except GraphNotFoundError:
                out.append(ItemGoneError(f"Graph {mailbox}: the meeting no longer exists"))
                continue
            body = event_body(item_id, event)
            out.append(body or SourceError(f"Graph {mailbox}: the meeting's body could not be read"))
        return out

    async def write_bodies(self, mailbox: str, bodies: Sequence[ItemBody], *,
                           notify: bool) -> list[str | SourceError]:
        out: list[str | SourceError] = []
        for body in bodies:
            document = {"body": {"contentType": "html" if body.is_html else "text", "content": body.content}}
            try:
                event = await self.client.request_json(mailbox, "PATCH", self._url(mailbox, body.item_id), document,
                                                       headers={"If-Match": f'W/"{body.change_key}"'})
            except GraphRequestError as exc:
                if exc.status != 412:
                    raise
                out.append(WriteConflictError(f"Graph {mailbox}: the meeting changed since it was read (412)"))
                continue
            except GraphNotFoundError:
                out.append(ItemGoneError(f"Graph {mailbox}: the meeting no longer exists (404)"))
                continue
            except SourceAccessError:
                out.append(WriteDeniedError(f"Graph {mailbox}: writing into the calendar was refused (403); "
                                            "check Calendars.ReadWrite and the application access policy"))
                continue
            change_key = event.get("changeKey")
            out.append(change_key if isinstance(change_key, str) else "")
        return out
