"""Graph PATCH /users/{id}/events/{id}: the event's body, with If-Match.

As Graph does: an `If-Match` etag (W/"<changeKey>") that is no longer current fails with 412
ErrorIrresolvableConflict and changes nothing; without If-Match the write is unconditional. A mailbox
whose write permission was revoked answers 403 ErrorAccessDenied. The organizer's update reaches the
attendees (Graph has no save-only update of a meeting with attendees), recorded as SendToAllAndSaveCopy.
Only `body` can be changed here; anything else is refused with 400, so a client bug cannot pass unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping

from pbxsync.sync.simulator.graph_json import HttpError, error_body
from pbxsync.sync.simulator.organisation import NoSuchItem, Organisation, StaleChangeKey
from pbxsync.sync.simulator.writes import WriteDenied, WriteRequest, write_body


def _etag_change_key(value: str) -> str:
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"')


def patch_event(org: Organisation, mailbox: str, item_id: str, headers: Mapping[str, str], body: object) -> None:
    """Apply one PATCH; raises HttpError for every refusal."""
    new = body.get("body") if isinstance(body, dict) and set(body) == {"body"} else None
    if not isinstance(new, dict) or not isinstance(new.get("content"), str) \
            or str(new.get("contentType", "")).lower() not in ("html", "text"):
        raise HttpError(400, error_body("BadRequest", "Only the event's body can be changed here."))
    if_match = headers.get("if-match")
    request = WriteRequest("graph", mailbox, item_id, "If-Match" if if_match else "", "SendToAllAndSaveCopy",
                           str(new["contentType"]).lower() == "html")
    try:
        write_body(org, request, _etag_change_key(if_match) if if_match else None, new["content"])
    except StaleChangeKey:
        raise HttpError(412, error_body("ErrorIrresolvableConflict", "The change key passed in the request does "
                                        "not match the current change key for the item.")) from None
    except WriteDenied:
        raise HttpError(403, error_body("ErrorAccessDenied", "Access is denied. Check credentials and try "
                                        "again.")) from None
    except NoSuchItem:
        raise HttpError(404, error_body("ErrorItemNotFound", "The specified object was not found in the "
                                        "store.")) from None
