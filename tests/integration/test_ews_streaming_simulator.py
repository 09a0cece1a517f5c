"""The EWS simulator's streaming notifications on the wire (raw HTTP, no exchangelib).

Held against Microsoft's examples: Subscribe answers a SubscriptionId; GetStreamingEvents answers ONE
chunked HTTP response carrying one SOAP envelope per chunk (a first message, notifications as changes
happen, keep-alives, ConnectionStatus Closed at the timeout); a subscription that vanished is reported
with ErrorSubscriptionIds; affinity headers are recorded and the X-BackEndOverrideCookie is set.
"""

from __future__ import annotations

import base64
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from pbxsync.sync.simulator.ews_operations import folder_id
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Organisation

M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
ALICE = "alice@example.com"


@pytest.fixture
def sim() -> Iterator[EwsSimulator]:
    org = Organisation.from_dict({"domain": "example.com", "users": [
        {"email": ALICE, "name": "Alice", "password": "alice-pw"},
        {"email": "svc-pbx@example.com", "name": "PBX", "password": "svc-pw", "can_impersonate": True}]})
    with EwsSimulator(org) as server:
        server.streaming.minute_seconds = 1.0  # ConnectionTimeout 1 = one second here
        server.streaming.keepalive_seconds = 0.3
        yield server


def envelope(body: str, impersonate: str = ALICE) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
            f'envelope/" xmlns:m="{M}" xmlns:t="{T}"><soap:Header><t:RequestServerVersion Version="Exchange2016"/>'
            f"<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>{impersonate}</t:SmtpAddress>"
            f"</t:ConnectingSID></t:ExchangeImpersonation></soap:Header><soap:Body>{body}</soap:Body>"
            "</soap:Envelope>").encode()


def post(sim: EwsSimulator, body: bytes, headers: dict[str, str] | None = None) -> tuple[socket.socket, bytes]:
    """Send one POST; return the socket and the raw response head (status line and headers)."""
    auth = base64.b64encode(b"svc-pbx@example.com:svc-pw").decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
    sock.sendall((f"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
                  f"Content-Type: text/xml; charset=utf-8\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode()
                 + body)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock, head


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        assert part, "connection closed mid-chunk"
        data += part
    return data


def chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        line = b""
        while not line.endswith(b"\r\n"):
            line += sock.recv(1)
        size = int(line.strip(), 16)
        if size == 0:
            return
        data = read_exactly(sock, size)
        assert read_exactly(sock, 2) == b"\r\n"
        yield data


def body_of(sock: socket.socket, head: bytes) -> bytes:
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    return read_exactly(sock, length)


def subscribe(sim: EwsSimulator, headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    sock, head = post(sim, envelope(
        '<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="contacts"/>'
        '<t:DistinguishedFolderId Id="calendar"/></t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType>'
        "<t:EventType>ModifiedEvent</t:EventType><t:EventType>MovedEvent</t:EventType></t:EventTypes>"
        "</m:StreamingSubscriptionRequest></m:Subscribe>"), headers)
    with sock:
        root = ET.fromstring(body_of(sock, head))
    message = root.find(f".//{{{M}}}SubscribeResponseMessage")
    assert message is not None and message.get("ResponseClass") == "Success"
    return message.findtext(f"{{{M}}}SubscriptionId") or "", head


def streaming_request(*ids: str, minutes: int = 1) -> bytes:
    listed = "".join(f"<t:SubscriptionId>{i}</t:SubscriptionId>" for i in ids)
    return envelope(f"<m:GetStreamingEvents><m:SubscriptionIds>{listed}</m:SubscriptionIds>"
                    f"<m:ConnectionTimeout>{minutes}</m:ConnectionTimeout></m:GetStreamingEvents>")


def message_of(chunk: bytes) -> ET.Element:
    root = ET.fromstring(chunk)  # each chunk is one complete SOAP envelope
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    message = root.find(f".//{{{M}}}GetStreamingEventsResponseMessage")
    assert message is not None
    return message


def test_one_chunked_response_carries_first_message_notifications_keepalives_and_closed(sim: EwsSimulator) -> None:
    sub, head = subscribe(sim, {"X-AnchorMailbox": ALICE, "X-PreferServerAffinity": "true"})
    assert b"Set-Cookie: X-BackEndOverrideCookie=" in head
    sock, head = post(sim, streaming_request(sub))
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
    seen: list[ET.Element] = []
    with sock:
        for index, chunk in enumerate(chunks(sock)):
            seen.append(message_of(chunk))
            if index == 0:
                sim.org.add_contact(ALICE, ContactRecord("", "", "New Person"))
    assert seen[0].findtext(f"{{{M}}}ConnectionStatus") == "OK" and seen[0].find(f"{{{M}}}Notifications") is None
    with_events = [m for m in seen if m.find(f"{{{M}}}Notifications") is not None]
    (notification,) = [n for m in with_events for n in m.iter(f"{{{M}}}Notification")]
    assert notification.findtext(f"{{{T}}}SubscriptionId") == sub
    created = notification.find(f"{{{T}}}CreatedEvent")
    assert created is not None and created.findtext(f"{{{T}}}TimeStamp")
    parent = created.find(f"{{{T}}}ParentFolderId")
    assert parent is not None and parent.get("Id") == folder_id(ALICE, "contacts")
    keepalives = [m for m in seen[1:-1] if m.find(f"{{{M}}}Notifications") is None]
    assert keepalives and all(m.findtext(f"{{{M}}}ConnectionStatus") == "OK" for m in keepalives)
    assert seen[-1].findtext(f"{{{M}}}ConnectionStatus") == "Closed"


def test_a_deleted_item_is_reported_as_moved_to_deleted_items(sim: EwsSimulator) -> None:
    contact = sim.org.add_contact(ALICE, ContactRecord("", "", "Leaving"))
    sub, _ = subscribe(sim)
    sim.org.delete_contact(ALICE, contact.item_id)  # queued: no connection is open yet
    sock, _ = post(sim, streaming_request(sub))
    with sock:
        moved = message_of(next(chunks(sock))).find(f".//{{{T}}}MovedEvent")
    assert moved is not None
    old_item, old_parent = moved.find(f"{{{T}}}OldItemId"), moved.find(f"{{{T}}}OldParentFolderId")
    parent = moved.find(f"{{{T}}}ParentFolderId")
    assert old_item is not None and old_item.get("Id") == contact.item_id
    assert old_parent is not None and old_parent.get("Id") == folder_id(ALICE, "contacts")
    assert parent is not None and parent.get("Id") == folder_id(ALICE, "deleteditems")


def test_a_dropped_subscription_ends_the_stream_with_its_id(sim: EwsSimulator) -> None:
    keep, _ = subscribe(sim)
    gone, _ = subscribe(sim)
    sock, _ = post(sim, streaming_request(keep, gone, minutes=30))
    with sock:
        received = chunks(sock)
        message_of(next(received))
        sim.streaming.drop()  # both vanish (an Exchange restart)
        error = message_of(next(received))
        assert list(received) == []  # and the response ends
    assert error.get("ResponseClass") == "Error"
    assert error.findtext(f"{{{M}}}ResponseCode") == "ErrorSubscriptionNotFound"
    assert sorted(e.text or "" for e in error.iter(f"{{{T}}}SubscriptionId")) == sorted([keep, gone])
    assert error.findtext(f"{{{M}}}ConnectionStatus") == "Closed"


def test_unknown_ids_and_limits_are_refused_as_exchange_does(sim: EwsSimulator) -> None:
    sock, head = post(sim, streaming_request("no-such-id"))
    with sock:
        message = message_of(body_of(sock, head))
    assert message.findtext(f"{{{M}}}ResponseCode") == "ErrorSubscriptionNotFound"
    assert [e.text for e in message.iter(f"{{{T}}}SubscriptionId")] == ["no-such-id"]
    sim.streaming.max_subscriptions = 1
    subscribe(sim)
    sock, head = post(sim, envelope(
        '<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/>'
        "</t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType></t:EventTypes>"
        "</m:StreamingSubscriptionRequest></m:Subscribe>"))
    with sock:
        text = body_of(sock, head).decode()
    assert "<m:ResponseCode>ErrorExceededSubscriptionCount</m:ResponseCode>" in text


def test_the_control_interface_drops_one_mailboxs_subscriptions(sim: EwsSimulator) -> None:
    subscribe(sim)
    auth = base64.b64encode(b"svc-pbx@example.com:svc-pw").decode()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        sock.sendall((f"POST /_simulator/streaming/drop?mailbox={ALICE} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Basic {auth}\r\nContent-Length: 0\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert body_of(sock, head) == b'{"dropped": 1}'
    assert sim.streaming.subscriptions(ALICE) == []


def test_a_subscription_hears_its_own_folders_and_the_folders_created_below_them(sim: EwsSimulator) -> None:
    suppliers = sim.org.add_contact_folder(ALICE, "Suppliers")
    sub_key = f"contacts:{suppliers.folder_id}"
    only_contacts, _ = subscribe(sim)  # calendar and Contacts: not the sub-folder
    sock, head = post(sim, envelope(
        '<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds>'
        f'<t:FolderId Id="{folder_id(ALICE, sub_key)}"/></t:FolderIds><t:EventTypes>'
        "<t:EventType>CreatedEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>"))
    with sock:
        with_sub = ET.fromstring(body_of(sock, head)).findtext(f".//{{{M}}}SubscriptionId") or ""
    sim.org.add_contact(ALICE, ContactRecord("", "", "Supplier", folder=suppliers.folder_id))
    sim.org.add_contact_folder(ALICE, "Customers")  # below Contacts: a folder event for Contacts' subscriptions
    sock, _ = post(sim, streaming_request(only_contacts, with_sub))
    with sock:
        message = message_of(next(chunks(sock)))
    heard = {n.findtext(f"{{{T}}}SubscriptionId"): n for n in message.iter(f"{{{M}}}Notification")}
    item_event = heard[with_sub].find(f"{{{T}}}CreatedEvent")
    assert item_event is not None and item_event.find(f"{{{T}}}ItemId") is not None
    parent = item_event.find(f"{{{T}}}ParentFolderId")
    assert parent is not None and parent.get("Id") == folder_id(ALICE, sub_key)
    (folder_event,) = list(heard[only_contacts])[1:]  # the new folder only: not the sub-folder's contact
    assert folder_event.tag == f"{{{T}}}CreatedEvent" and folder_event.find(f"{{{T}}}FolderId") is not None
    parent = folder_event.find(f"{{{T}}}ParentFolderId")
    assert parent is not None and parent.get("Id") == folder_id(ALICE, "contacts")
