"""Meeting bodies over EWS: GetItem (item:Body) and UpdateItem (SetItemField item:Body) via exchangelib.

One UpdateItem per mailbox and batch, not per meeting (exchangelib chunks them). The bodies and change keys
usually come with the calendar sync's own GetItem (sync.sources.kept_bodies); only the others, and every
re-read after a conflict, cost one GetItem per mailbox and batch. UpdateItem goes
with the ChangeKey read and ConflictResolution NeverOverwrite, so an organizer's newer edit fails our write
(ErrorIrresolvableConflict) instead of being overwritten. Attendees get the update when asked
(SendToAllAndSaveCopy), else it is only saved (SendToNone). Runs through EwsSource.run_as: the mailbox's
account, semaphore, busy back-off and error mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchangelib import CalendarItem, HTMLBody
from exchangelib import errors as ews_errors
from exchangelib.items import NEVER_OVERWRITE, SAVE_ONLY, SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE
from exchangelib.properties import Body
from exchangelib.services import UpdateItem

from pbxsync.sync.errors import ItemGoneError, SourceError, WriteConflictError, WriteDeniedError
from pbxsync.sync.sources.ews import EwsSource, item_body, map_error
from pbxsync.sync.sources.writer import ItemBody

CHUNK = 100  # items per GetItem / UpdateItem request


def _item_error(exc: BaseException, mailbox: str, writing: bool) -> SourceError:
    who = f"EWS {mailbox}"
    if isinstance(exc, ews_errors.ErrorIrresolvableConflict):
        return WriteConflictError(f"{who}: the meeting changed since it was read (ErrorIrresolvableConflict)")
    if isinstance(exc, ews_errors.ErrorItemNotFound):
        return ItemGoneError(f"{who}: the meeting no longer exists (ErrorItemNotFound)")
    if writing and isinstance(exc, ews_errors.ErrorAccessDenied):
        return WriteDeniedError(f"{who}: Exchange refused writing into the calendar (ErrorAccessDenied)")
    return map_error(exc, mailbox)


class PerItemUpdateItem(UpdateItem):  # type: ignore[misc]  # exchangelib is untyped
    """exchangelib's UpdateItem, except that a conflict or a refusal of one item comes back as that item's
    result. exchangelib 5.6 raises ErrorIrresolvableConflict and ErrorAccessDenied out of the whole batch
    (they are not in its ERRORS_TO_CATCH_IN_RESPONSE), which would lose the change keys of the items written
    before it in the same request. Pinned by tests/integration/test_write_back_simulator.py."""

    ERRORS_TO_CATCH_IN_RESPONSE = (*UpdateItem.ERRORS_TO_CATCH_IN_RESPONSE, ews_errors.ErrorIrresolvableConflict,
                                   ews_errors.ErrorAccessDenied)


class EwsWriter:
    def __init__(self, source: EwsSource) -> None:
        self.source = source

    async def read_bodies(self, mailbox: str, item_ids: Sequence[str]) -> list[ItemBody | SourceError]:
        """The bodies the calendar sync kept (sync.sources.kept_bodies) without a request; GetItem for the rest."""
        kept = self.source.kept_bodies.take(mailbox, item_ids) if self.source.kept_bodies is not None else {}
        missing = [i for i in item_ids if i not in kept]
        read = await self.source.run_as(mailbox, self._read, mailbox, missing) if missing else []
        fetched = dict(zip(missing, read, strict=True))
        return [kept[i] if i in kept else fetched[i] for i in item_ids]

    async def write_bodies(self, mailbox: str, bodies: Sequence[ItemBody], *,
                           notify: bool) -> list[str | SourceError]:
        return await self.source.run_as(mailbox, self._write, mailbox, list(bodies), notify)

    @staticmethod
    def _read(account: Any, mailbox: str, item_ids: list[str]) -> list[ItemBody | SourceError]:
        out: list[ItemBody | SourceError] = []
        for item_id, item in zip(item_ids, account.fetch(ids=[(i, None) for i in item_ids], only_fields=["body"],
                                                         chunk_size=CHUNK), strict=True):
            if isinstance(item, BaseException):
                out.append(_item_error(item, mailbox, False))
                continue
            out.append(item_body(item_id, item))
        return out

    @staticmethod
    def _write(account: Any, mailbox: str, bodies: list[ItemBody], notify: bool) -> list[str | SourceError]:
        items = [(CalendarItem(account=account, id=b.item_id, changekey=b.change_key,
                               body=HTMLBody(b.content) if b.is_html else Body(b.content)), ["body"])
                 for b in bodies]
        results = PerItemUpdateItem(account=account, chunk_size=CHUNK).call(
            items=items, conflict_resolution=NEVER_OVERWRITE, message_disposition=SAVE_ONLY,
            send_meeting_invitations_or_cancellations=SEND_TO_ALL_AND_SAVE_COPY if notify else SEND_TO_NONE,
            suppress_read_receipts=True)
        out: list[str | SourceError] = []
        for result in results:
            if isinstance(result, BaseException):
                out.append(_item_error(result, mailbox, True))
            else:
                out.append(str(result[1] or ""))
        return out
