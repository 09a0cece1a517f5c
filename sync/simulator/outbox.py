"""The simulators' outbox: mail sent through EWS CreateItem (a Message with MessageDisposition SendOnly or
SendAndSaveCopy) or Graph `POST /users/{id}/sendMail` is accepted and kept here, per simulator.

Tests read `sim.outbox.messages()`; people and scripts read it over the simulator's control interface
(`GET /_simulator/outbox`, JSON) or with `pbxsync simulate outbox --url URL [--json]`. A message sent with a
saved copy is also what the sender's Sent Items would show (`saved_copy`). Nothing is delivered anywhere.

The parsing mirrors what Exchange checks: a message needs at least one recipient; the `From` of a message
must be the mailbox that sends it (else ErrorSendAsDenied / 403 ErrorSendAsDenied); saving a draft
(MessageDisposition SaveOnly) or creating other item types is not offered here.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pbxsync.sync.simulator.ews_xml import MESSAGES_NS, TYPES_NS, text_of

OUTBOX_PATH = "/_simulator/outbox"
MAX_BODY_CHARS = 1_000_000  # a simulator keeps what it is given, within reason
_M, _T = f"{{{MESSAGES_NS}}}", f"{{{TYPES_NS}}}"


@dataclass(frozen=True)
class SentMail:
    id: int
    via: str  # "ews" | "graph"
    sender: str  # the mailbox that sent it (impersonated, or the Graph user)
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str
    body_type: str  # "Text" | "HTML"
    saved_copy: bool  # SendAndSaveCopy / saveToSentItems: a copy is in the sender's Sent Items
    sent_at: str

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["to"], data["cc"] = list(self.to), list(self.cc)
        return data


class MailRefused(Exception):
    """The request is not a message the simulator accepts: (code, message) as Exchange would say it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Outbox:
    """Thread-safe: the simulators serve requests on threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[SentMail] = []

    def add(self, via: str, sender: str, to: list[str], cc: list[str], subject: str, body: str, body_type: str,
            saved_copy: bool) -> SentMail:
        if not to and not cc:
            raise MailRefused("ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
        with self._lock:
            mail = SentMail(len(self._sent) + 1, via, sender.lower(), tuple(to), tuple(cc), subject,
                            body[:MAX_BODY_CHARS], body_type, saved_copy,
                            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            self._sent.append(mail)
            return mail

    def messages(self) -> list[SentMail]:
        with self._lock:
            return list(self._sent)

    def to(self, address: str) -> list[SentMail]:
        return [m for m in self.messages() if address.lower() in (a.lower() for a in m.to)]

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def as_json(self) -> list[dict[str, Any]]:
        return [m.as_json() for m in self.messages()]


def _addresses(parent: ET.Element | None) -> list[str]:
    if parent is None:
        return []
    return [text_of(e) for e in parent.iter(f"{_T}EmailAddress") if text_of(e)]


def ews_create_messages(payload: ET.Element, principal: str, outbox: Outbox) -> int:
    """EWS CreateItem (`payload` is the m:CreateItem element) sending Messages as `principal`.
    Returns how many were sent; raises MailRefused for what Exchange would refuse."""
    disposition = payload.get("MessageDisposition", "")
    if disposition not in ("SendOnly", "SendAndSaveCopy"):
        raise MailRefused("ErrorInvalidRequest", f"MessageDisposition {disposition or '(none)'} is not supported "
                          "by this simulator (only SendOnly and SendAndSaveCopy).")
    items = payload.find(f"{_M}Items")
    messages = list(items) if items is not None else []
    if not messages or any(m.tag != f"{_T}Message" for m in messages):
        raise MailRefused("ErrorInvalidRequest", "Only Message items can be created by this simulator.")
    for message in messages:
        author = _addresses(message.find(f"{_T}From"))
        if author and author[0].lower() != principal.lower():
            raise MailRefused("ErrorSendAsDenied", "The user account which was used to submit this request "
                              "does not have the right to send mail on behalf of the specified sending account.")
    for message in messages:
        body = message.find(f"{_T}Body")
        outbox.add("ews", principal, _addresses(message.find(f"{_T}ToRecipients")),
                   _addresses(message.find(f"{_T}CcRecipients")), text_of(message.find(f"{_T}Subject")),
                   body.text or "" if body is not None else "",
                   body.get("BodyType", "Text") if body is not None else "Text", disposition == "SendAndSaveCopy")
    return len(messages)


def _graph_addresses(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MailRefused("ErrorInvalidRecipients", "Recipients must be a list.")
    found = []
    for entry in value:
        address = entry.get("emailAddress", {}).get("address") if isinstance(entry, dict) else None
        if not isinstance(address, str) or "@" not in address:
            raise MailRefused("ErrorInvalidRecipients", "A recipient has no valid emailAddress.address.")
        found.append(address)
    return found


def graph_send_mail(mailbox: str, document: object, outbox: Outbox) -> SentMail:
    """Graph `POST /users/{mailbox}/sendMail`: {"message": {...}, "saveToSentItems": bool}."""
    if not isinstance(document, dict) or not isinstance(document.get("message"), dict):
        raise MailRefused("ErrorInvalidRequest", "The request body must hold a message.")
    message: dict[str, Any] = document["message"]
    author = message.get("from")
    if isinstance(author, dict) and _graph_addresses([author])[0].lower() != mailbox.lower():
        raise MailRefused("ErrorSendAsDenied", "The user account which was used to submit this request does not "
                          "have the right to send mail on behalf of the specified sending account.")
    body = message.get("body")
    if not isinstance(body, dict):
        body = {}
    content, kind = body.get("content", ""), body.get("contentType", "Text")
    subject = message.get("subject", "")
    if not isinstance(content, str) or not isinstance(subject, str) or kind not in ("Text", "text", "HTML", "html"):
        raise MailRefused("ErrorInvalidRequest", "subject and body.content must be strings; contentType Text or HTML.")
    save = document.get("saveToSentItems", True)
    return outbox.add("graph", mailbox, _graph_addresses(message.get("toRecipients")),
                      _graph_addresses(message.get("ccRecipients")), subject, content,
                      "HTML" if kind.lower() == "html" else "Text", save is not False)
