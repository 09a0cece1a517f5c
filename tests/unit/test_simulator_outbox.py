"""The simulators' outbox (sync/simulator/outbox.py): what EWS CreateItem and Graph sendMail accept and refuse,
and the `[meetings]` notice keys of the config."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pbxsync.sync.config import parse_config
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.simulator.ews_xml import MESSAGES_NS, TYPES_NS
from pbxsync.sync.simulator.outbox import MailRefused, Outbox, ews_create_messages, graph_send_mail
from pbxsync.sync.simulator.outbox_client import render_outbox

BOB = "bob@example.com"


def create_item(disposition: str = "SendAndSaveCopy", author: str = "", to: str = BOB,
                item: str = "Message") -> ET.Element:
    sender = f"<t:From><t:Mailbox><t:EmailAddress>{author}</t:EmailAddress></t:Mailbox></t:From>" if author else ""
    recipients = (f"<t:ToRecipients><t:Mailbox><t:EmailAddress>{to}</t:EmailAddress></t:Mailbox></t:ToRecipients>"
                  if to else "")
    return ET.fromstring(
        f'<m:CreateItem xmlns:m="{MESSAGES_NS}" xmlns:t="{TYPES_NS}" MessageDisposition="{disposition}">'
        f"<m:Items><t:{item}><t:Subject>Hi &amp; bye</t:Subject><t:Body BodyType=\"Text\">one&#13;&#10;two</t:Body>"
        f"{recipients}{sender}</t:{item}></m:Items></m:CreateItem>")


def test_ews_send_and_save_copy_lands_in_the_outbox() -> None:
    outbox = Outbox()
    assert ews_create_messages(create_item(), BOB, outbox) == 1
    [mail] = outbox.messages()
    assert (mail.via, mail.sender, mail.to, mail.subject, mail.body, mail.saved_copy) == \
        ("ews", BOB, (BOB,), "Hi & bye", "one\r\ntwo", True)
    assert ews_create_messages(create_item("SendOnly"), BOB, outbox) == 1
    assert outbox.messages()[1].saved_copy is False


@pytest.mark.parametrize(("element", "code"), [
    (create_item("SaveOnly"), "ErrorInvalidRequest"),
    (create_item(item="CalendarItem"), "ErrorInvalidRequest"),
    (create_item(author="alice@example.com"), "ErrorSendAsDenied"),
    (create_item(to=""), "ErrorInvalidRecipients"),
])
def test_ews_refuses_what_exchange_refuses(element: ET.Element, code: str) -> None:
    outbox = Outbox()
    with pytest.raises(MailRefused) as refused:
        ews_create_messages(element, BOB, outbox)
    assert refused.value.code == code
    assert outbox.messages() == []


def test_graph_send_mail() -> None:
    outbox = Outbox()
    graph_send_mail(BOB, {"message": {"subject": "s", "body": {"contentType": "Text", "content": "b"},
                                      "toRecipients": [{"emailAddress": {"address": BOB}}]}}, outbox)
    [mail] = outbox.messages()
    assert (mail.via, mail.to, mail.saved_copy, mail.body_type) == ("graph", (BOB,), True, "Text")


@pytest.mark.parametrize("document", [
    None, [], {"message": "x"}, {"message": {"toRecipients": "bob"}},
    {"message": {"toRecipients": [{"emailAddress": {"address": 5}}]}},
    {"message": {"subject": 1, "toRecipients": [{"emailAddress": {"address": BOB}}]}},
    {"message": {"toRecipients": []}},
    {"message": {"from": {"emailAddress": {"address": "alice@example.com"}},
                 "toRecipients": [{"emailAddress": {"address": BOB}}]}},
])
def test_graph_refuses_hostile_bodies(document: object) -> None:
    outbox = Outbox()
    with pytest.raises(MailRefused):
        graph_send_mail(BOB, document, outbox)
    assert outbox.messages() == []


def test_the_outbox_listing_is_one_line_per_value() -> None:
    outbox = Outbox()
    outbox.add("ews", BOB, [BOB], [], "evil\r\nsubject\x1b[31m", "b", "Text", True)
    text = render_outbox(outbox.as_json())
    assert "\r" not in text and "\x1b" not in text
    assert "subject: evil subject [31m" in text
    assert render_outbox([]) == "the outbox is empty"


def test_the_notice_keys_of_the_config() -> None:
    base = {"exchange": {"username": "svc-pbx@example.com"}}
    cfg = parse_config({**base, "meetings": {"notify_organizer": True, "notices_language": "de",
                                     "notices_from": "pbx@example.com", "notices_templates": "/etc/pbxsync/notices"}})
    assert (cfg.meetings.notify_organizer, cfg.meetings.notices_language, cfg.meetings.notices_from) == \
        (True, "de", "pbx@example.com")
    assert parse_config(base).meetings.notify_organizer is False
    with pytest.raises(ConfigError) as bad:
        parse_config({**base, "meetings": {"notices_language": "../x", "notices_from": "me",
                                   "notices_templates": "relative/dir"}})
    text = str(bad.value)
    assert "meetings.notices_language" in text and "meetings.notices_from" in text
    with pytest.raises(ConfigError, match=r"users\[0\]\.notices_language"):
        parse_config({**base, "users": [{"extension": "101", "email": "a@example.com", "notices_language": "EN!"}]})
    user = parse_config({**base, "users": [{"extension": "101", "email": "a@example.com", "notices_language": "de"}]})
    assert user.users[0].notices_language == "de"
    assert "meetings.notices_templates" in text
