"""EWS UpdateItem on calendar items: the body (SetItemField / DeleteItemField item:Body), with ChangeKey.

What Exchange does and the simulator copies: each ItemChange names an ItemId with its ChangeKey. With
ConflictResolution NeverOverwrite or AutoResolve a change key that is no longer current fails that item
with ErrorIrresolvableConflict (a real server auto-resolves only edits of different properties; the body
is the one property written here, so a stale key always conflicts); AlwaysOverwrite ignores it. A mailbox
whose write permission was revoked (`Organisation.writes.revoke`) answers ErrorAccessDenied. The
request's SendMeetingInvitationsOrCancellations is recorded (`Organisation.writes.log`), and
SendToAll... also updates the attendees' copies. Only the body can be changed; other fields are refused
with ErrorInvalidPropertySet, so a client bug cannot pass unnoticed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from pbxsync.sync.simulator.ews_xml import MESSAGES_NS, TYPES_NS, item_id_xml
from pbxsync.sync.simulator.organisation import NoSuchItem, NoSuchMailbox, StaleChangeKey
from pbxsync.sync.simulator.writes import WriteDenied, WriteRequest, write_body

if TYPE_CHECKING:
    from pbxsync.sync.simulator.ews_operations import EwsRequest

_M, _T = f"{{{MESSAGES_NS}}}", f"{{{TYPES_NS}}}"
_CONFLICT_RESOLUTIONS = ("NeverOverwrite", "AutoResolve", "AlwaysOverwrite")
_SEND = ("SendToNone", "SendOnlyToAll", "SendOnlyToChanged", "SendToAllAndSaveCopy", "SendToChangedAndSaveCopy")
_ERRORS = {
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the change key "
                                 "passed in the request does not match the current change key for the item.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorInvalidPropertySet": "The property set is not valid for this update.",
    "ErrorChangeKeyRequiredForWriteOperations": "When making changes to an item, a ChangeKey is required.",
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
}


def _message(inner: str) -> str:
    return (f'<m:UpdateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f"{inner}<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults></m:UpdateItemResponseMessage>")


def _error(code: str) -> str:
    return (f'<m:UpdateItemResponseMessage ResponseClass="Error"><m:MessageText>{_ERRORS[code]}</m:MessageText>'
            f"<m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
            "<m:Items/></m:UpdateItemResponseMessage>")


def _new_body(change: ET.Element) -> tuple[str, bool] | None:
    """(body, is_html) the ItemChange sets; None when it changes anything but the body."""
    updates = change.find(f"{_T}Updates")
    result: tuple[str, bool] | None = None
    for update in list(updates) if updates is not None else []:
        uri = update.find(f"{_T}FieldURI")
        if uri is None or uri.get("FieldURI") != "item:Body":
            return None
        if update.tag == f"{_T}DeleteItemField":
            result = ("", True)
        elif update.tag == f"{_T}SetItemField":
            body = update.find(f".//{_T}Body")
            if body is None:
                return None
            result = (body.text or "", body.get("BodyType", "HTML") == "HTML")  # never stripped: byte for byte
        else:
            return None
    return result


def update_item(r: EwsRequest) -> str:
    """The UpdateItem operation: one ResponseMessage per ItemChange."""
    conflict = r.payload.get("ConflictResolution", "AutoResolve")
    send = r.payload.get("SendMeetingInvitationsOrCancellations", "SendToAllAndSaveCopy")
    if conflict not in _CONFLICT_RESOLUTIONS or send not in _SEND:
        return _error("ErrorInvalidPropertySet")
    out = []
    changes = r.payload.find(f"{_M}ItemChanges")
    for change in list(changes) if changes is not None else []:
        ref = change.find(f"{_T}ItemId")
        new = _new_body(change)
        if ref is None or new is None:
            out.append(_error("ErrorInvalidPropertySet"))
            continue
        change_key = ref.get("ChangeKey")
        if not change_key and conflict != "AlwaysOverwrite":
            out.append(_error("ErrorChangeKeyRequiredForWriteOperations"))
            continue
        request = WriteRequest("ews", r.principal, ref.get("Id", ""), conflict, send, new[1])
        try:
            stored = write_body(r.org, request, None if conflict == "AlwaysOverwrite" else change_key, new[0])
        except StaleChangeKey:
            out.append(_error("ErrorIrresolvableConflict"))
        except WriteDenied:
            out.append(_error("ErrorAccessDenied"))
        except NoSuchItem:
            out.append(_error("ErrorItemNotFound"))
        except NoSuchMailbox:
            out.append(_error("ErrorNonExistentMailbox"))
        else:
            out.append(_message(f"<m:Items><t:CalendarItem>{item_id_xml(stored.item_id, stored.change_key)}"
                                "</t:CalendarItem></m:Items>"))
    return "".join(out)
