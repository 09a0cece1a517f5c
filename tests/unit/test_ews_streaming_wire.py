"""The exchangelib edge of EWS streaming (sync.notify.ews_wire), offline.

Pins an exchangelib 5.6 defect the edge works around: in a GetStreamingEvents error, the invalid ids come
as t:SubscriptionId inside m:ErrorSubscriptionIds (types.xsd, NonEmptyArrayOfSubscriptionIdsType), but
exchangelib looks for m:SubscriptionId, so it cannot tell which of a connection's subscriptions are gone.
"""

from __future__ import annotations

from typing import Any

import pytest
from exchangelib import BASIC, IMPERSONATION, Account, Build, Configuration, Credentials, Version
from exchangelib import errors as ews_errors
from exchangelib.services import GetStreamingEvents

from pbxsync.sync.notify import ews_wire

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"

# Microsoft's "GetStreamingEvents operation" example (successful response), in a full envelope.
EXAMPLE = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{SOAP}"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="0"
 MajorBuildNumber="775" MinorBuildNumber="7" Version="V2_4" xmlns:h="{T}"/></s:Header><s:Body>
<m:GetStreamingEventsResponse xmlns:t="{T}" xmlns:m="{M}"><m:ResponseMessages>
<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
<m:Notifications><m:Notification><t:SubscriptionId>f6bc657d-dde1-4f94-952d-143b95d6483d</t:SubscriptionId>
<t:CreatedEvent><t:TimeStamp>2013-09-16T04:31:29Z</t:TimeStamp><t:ItemId Id="AAMkADkz" ChangeKey="CQAAAA==" />
<t:ParentFolderId Id="AQMkCAL" ChangeKey="AQAAAA==" /></t:CreatedEvent>
<t:MovedEvent><t:TimeStamp>2013-09-16T04:31:30Z</t:TimeStamp><t:ItemId Id="AAMkNEW"/>
<t:ParentFolderId Id="AQMkDELETED"/><t:OldItemId Id="AAMkOLD"/><t:OldParentFolderId Id="AQMkCAL"/></t:MovedEvent>
<t:ModifiedEvent><t:TimeStamp>2013-09-16T04:31:29Z</t:TimeStamp><t:FolderId Id="AQMkCAL" ChangeKey="AQAAAA==" />
<t:ParentFolderId Id="AQMkROOT" ChangeKey="AQAAAA==" /><t:UnreadCount>1</t:UnreadCount></t:ModifiedEvent>
</m:Notification></m:Notifications><m:ConnectionStatus>OK</m:ConnectionStatus>
</m:GetStreamingEventsResponseMessage></m:ResponseMessages></m:GetStreamingEventsResponse></s:Body></s:Envelope>"""

LOST = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{SOAP}"><s:Body><m:GetStreamingEventsResponse xmlns:t="{T}" xmlns:m="{M}">
<m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass="Error">
<m:MessageText>The specified subscription was not found.</m:MessageText>
<m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
<m:ErrorSubscriptionIds><t:SubscriptionId>gone-1</t:SubscriptionId></m:ErrorSubscriptionIds>
<m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage></m:ResponseMessages>
</m:GetStreamingEventsResponse></s:Body></s:Envelope>"""


@pytest.fixture
def account() -> Any:
    config = Configuration(service_endpoint="http://127.0.0.1:9/EWS/Exchange.asmx",
                           credentials=Credentials("svc-pbx@example.com", "x"), version=Version(Build(15, 1)),
                           auth_type=BASIC)
    return Account("alice@example.com", config=config, autodiscover=False, access_type=IMPERSONATION)


def test_exchangelib_loses_the_ids_of_the_subscriptions_that_are_gone(account: Any) -> None:
    plain = GetStreamingEvents(account=account)
    with pytest.raises(ews_errors.ErrorSubscriptionNotFound) as raised:
        list(plain.parse(LOST.encode()))
    assert "gone-1" not in str(raised.value)  # the defect: it looked for m:SubscriptionId


def test_our_service_reads_the_ids_of_the_subscriptions_that_are_gone(account: Any) -> None:
    ours = ews_wire._StreamingEvents(account=account)
    heard: list[bool] = []
    ours.heard = heard.append
    with pytest.raises(ews_errors.ErrorSubscriptionNotFound):
        list(ours.parse(LOST.encode()))
    assert ours.error_subscription_ids == ("gone-1",)
    assert heard == [False]  # a message was heard: an error one


def test_microsofts_example_yields_each_event_with_the_folders_it_names(account: Any) -> None:
    (notification,) = list(ews_wire._StreamingEvents(account=account).parse(EXAMPLE.encode()))
    assert notification.subscription_id == "f6bc657d-dde1-4f94-952d-143b95d6483d"
    assert [ews_wire.event_folder_ids(e) for e in notification.events] == [
        ("AQMkCAL",), ("AQMkDELETED", "AQMkCAL"), ("AQMkROOT", "AQMkCAL")]


def test_only_a_folder_created_deleted_moved_or_copied_changes_what_to_watch(account: Any) -> None:
    (notification,) = list(ews_wire._StreamingEvents(account=account).parse(EXAMPLE.encode()))
    created_item, moved_item, modified_folder = notification.events
    assert [ews_wire.is_structural(e) for e in notification.events] == [False, False, False]
    assert ews_wire.is_structural(type(created_item)(folder_id=modified_folder.folder_id))  # a new folder
    assert not ews_wire.is_structural(moved_item)


def test_the_throttling_errors_say_what_limit_was_hit_and_what_to_do() -> None:
    text = ews_wire.describe(ews_errors.ErrorExceededSubscriptionCount("x"), "alice@example.com")
    assert text.startswith("EWS alice@example.com: ") and "EWSMaxSubscriptions" in text and "timed polling" in text
    text = ews_wire.describe(ews_errors.ErrorExceededConnectionCount("x"), "alice@example.com")
    assert "HangingConnectionLimit" in text
    assert "is gone" in ews_wire.describe(ews_errors.ErrorSubscriptionNotFound("x"), "a@example.com")
    assert ews_wire.describe(ews_errors.UnauthorizedError("x"), "a@example.com").endswith("(HTTP 401)")


def test_the_group_headers_carry_the_anchor_and_ask_for_affinity(account: Any) -> None:
    affinity = ews_wire.Affinity("anchor@example.com")
    svc = ews_wire._Subscribe(account=account)
    svc.affinity = affinity
    account.affinity_cookie = "from-the-accounts-own-calls"
    headers = svc._extra_headers()
    assert headers["X-AnchorMailbox"] == "anchor@example.com"  # not alice: the group's anchor
    assert headers["X-PreferServerAffinity"] == "True"
    assert ews_wire.COOKIE not in headers  # the group's cookie travels as a cookie, not exchangelib's header
