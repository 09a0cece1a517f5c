"""Sending mail through Exchange, for pbxsync's notices to organizers (plugin/notices).

One message type (`OutgoingMail`: plain text, one recipient) and one contract (`MailSender`), with an
adapter per backend: EWS CreateItem of a Message with MessageDisposition=SendAndSaveCopy
(exchangelib's `Message.send_and_save()`, as the sending mailbox through the source's account, so
impersonation and the per-mailbox semaphore apply), and Graph `POST /users/{id}/sendMail` with
`saveToSentItems`. Both keep the copy in the sender's Sent Items. Errors leave as `SourceError`s only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from exchangelib import Account, Body, Mailbox, Message

from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.graph_client import GraphClient, user_path

MAX_SUBJECT_CHARS = 255
MAX_BODY_CHARS = 100_000


@dataclass(frozen=True)
class OutgoingMail:
    sender: str  # the mailbox that sends it (and keeps the copy)
    to: str
    subject: str  # one line: a CR or LF here would be a header of its own in the MIME Exchange builds
    body: str  # plain text

    def __post_init__(self) -> None:
        for name in ("sender", "to", "subject"):
            value = getattr(self, name)
            if any(ch in value for ch in "\r\n\0"):
                raise ValueError(f"mail {name} must be one line")
        if len(self.subject) > MAX_SUBJECT_CHARS or len(self.body) > MAX_BODY_CHARS:
            raise ValueError("mail subject or body too long")
        if "@" not in self.sender or "@" not in self.to:
            raise ValueError("mail sender and recipient must be addresses")


class MailSender(Protocol):
    async def send_mail(self, mail: OutgoingMail) -> None:
        """Send `mail` and keep a copy in the sender's Sent Items. Raises SourceError subclasses only."""
        ...


def _send_with_exchangelib(account: Account, mail: OutgoingMail) -> None:
    # exchangelib finds the account's Sent Items (GetFolder, once per account: cached) and names it as
    # SavedItemFolderId: the copy is kept where Outlook shows sent mail.
    message = Message(account=account, subject=mail.subject, body=Body(mail.body),
                      to_recipients=[Mailbox(email_address=mail.to)])
    message.send_and_save()


class EwsMailSender:
    def __init__(self, source: EwsSource) -> None:
        self.source = source

    async def send_mail(self, mail: OutgoingMail) -> None:
        await self.source.run_as(mail.sender, _send_with_exchangelib, mail)


def graph_message(mail: OutgoingMail) -> dict[str, Any]:
    return {"message": {"subject": mail.subject, "body": {"contentType": "Text", "content": mail.body},
                        "toRecipients": [{"emailAddress": {"address": mail.to}}]},
            "saveToSentItems": True}


class GraphMailSender:
    def __init__(self, client: GraphClient) -> None:
        self.client = client

    async def send_mail(self, mail: OutgoingMail) -> None:
        url = self.client.url(user_path(mail.sender) + "/sendMail")
        answer = await self.client.request_json(mail.sender, "POST", url, graph_message(mail))
        if answer:
            raise SourceDataError(f"Graph: sendMail for {mail.sender} answered with a body, not 202 Accepted")


def mail_sender_for(source: MailboxSource) -> MailSender | None:
    """The sender over the same connection as `source`; None for a backend that cannot send mail."""
    if isinstance(source, EwsSource):
        return EwsMailSender(source)
    if isinstance(source, GraphSource):
        return GraphMailSender(source.client)
    return None
