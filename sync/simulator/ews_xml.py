"""XML text helpers for the EWS simulator: escaping that always yields well-formed XML, and item rendering.

Element names, namespaces and value spellings follow Microsoft's published EWS examples
(learn.microsoft.com "... operation" pages) and the schema order of types.xsd.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime

from pbxsync.sync.simulator.records import (
    AttendeeRecord,
    ContactFolderRecord,
    ContactRecord,
    Item,
    MeetingRecord,
    OccurrenceView,
    OddItemRecord,
)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGES_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
ERRORS_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
ADDRESSING_NS = "http://www.w3.org/2005/08/addressing"

# Characters XML 1.0 cannot carry at all, even escaped (C0 controls other than TAB/LF/CR, surrogates,
# U+FFFE/U+FFFF): replaced, so hostile data still gives a well-formed document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
_SPECIAL = re.compile("[&<>\"\r\n\t]")


def esc(text: str) -> str:
    """Escape for element text or a double-quoted attribute. CR, LF and TAB go as character references
    so that neither newline nor attribute-value normalisation alters them: every XML-representable
    string round-trips exactly."""
    return _SPECIAL.sub(lambda m: _ESCAPES[m[0]], _NOT_XML.sub("\ufffd", text))


def xml_safe(text: str) -> str:
    """What a parser will give back for `esc(text)`."""
    return _NOT_XML.sub("\ufffd", text)


def text_of(elem: ET.Element | None, default: str = "") -> str:
    """A parsed request element's text, stripped; `default` when it is absent or empty."""
    return (elem.text or default).strip() if elem is not None else default


def ews_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def el(name: str, text: str) -> str:
    return f"<t:{name}>{esc(text)}</t:{name}>"


_RESPONSE_NAMES = {"unknown": "Unknown", "organizer": "Organizer", "tentative": "Tentative", "accept": "Accept",
                   "decline": "Decline", "noresponse": "NoResponseReceived"}
# records.PHONE_KINDS -> EWS PhoneNumberKeyType (types.xsd): every key Exchange has.
PHONE_KEYS = {"business": "BusinessPhone", "business2": "BusinessPhone2", "mobile": "MobilePhone",
              "home": "HomePhone", "home2": "HomePhone2", "fax": "BusinessFax", "other": "OtherTelephone",
              "company": "CompanyMainPhone", "car": "CarPhone", "radio": "RadioPhone", "assistant": "AssistantPhone",
              "callback": "Callback", "primary": "PrimaryPhone", "pager": "Pager", "isdn": "Isdn", "telex": "Telex",
              "tty": "TtyTddPhone", "home_fax": "HomeFax", "other_fax": "OtherFax"}
# An odd item's element and ItemClass, as Exchange files them in a contacts folder.
_ODD_ITEMS = {"group": ("DistributionList", "IPM.DistList"), "message": ("Message", "IPM.Note"),
              "document": ("Item", "IPM.Document.Word.Document.12"), "unreadable": ("Contact", "IPM.Contact"),
              "malformed": ("Contact", "IPM.Contact")}
# 25 characters that are no ISO 8601 date-time: exchangelib 5.6 raises on it (sync/sources/ews_sync.py).
UNPARSEABLE_BIRTHDAY = "0000-00-00T00:00:00+99:99"


def mailbox_xml(email: str, name: str) -> str:
    routing = "EX" if email.startswith("/") else "SMTP"  # internal senders may show as X.500 (legacyExchangeDN)
    return (f"<t:Mailbox>{el('Name', name or email)}{el('EmailAddress', email)}"
            f"<t:RoutingType>{routing}</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>")


def attendees_xml(tag: str, attendees: Iterable[AttendeeRecord]) -> str:
    inner = "".join(f"<t:Attendee>{mailbox_xml(a.email, a.name)}"
                    f"<t:ResponseType>{_RESPONSE_NAMES.get(a.response, 'Unknown')}</t:ResponseType></t:Attendee>"
                    for a in attendees)
    return f"<t:{tag}>{inner}</t:{tag}>" if inner else ""


class Shape:
    """Which properties a request asked for: everything (AllProperties/Default) or a named set."""

    def __init__(self, base: str, fields: set[str]) -> None:
        self.base = base
        self.fields = fields

    @property
    def ids_only(self) -> bool:
        return self.base == "IdOnly" and not self.fields

    def wants(self, element: str) -> bool:
        return self.base != "IdOnly" or element in self.fields


def item_id_xml(item_id: str, change_key: str | None) -> str:
    ck = f' ChangeKey="{esc(change_key)}"' if change_key is not None else ""
    return f'<t:ItemId Id="{esc(item_id)}"{ck}/>'


def contact_xml(c: ContactRecord, shape: Shape) -> str:
    parts = [item_id_xml(c.item_id, c.change_key)]
    if shape.ids_only:
        return f"<t:Contact>{parts[0]}</t:Contact>"
    w = shape.wants
    if w("ItemClass"):
        parts.append("<t:ItemClass>IPM.Contact</t:ItemClass>")
    if w("Subject"):
        parts.append(el("Subject", c.display_name))
    for element, value in (("FileAs", c.file_as), ("DisplayName", c.display_name), ("GivenName", c.given_name)):
        if w(element) and value:
            parts.append(el(element, value))
    if w("CompanyName") and c.company:
        parts.append(el("CompanyName", c.company))
    if w("EmailAddresses") and c.emails:
        entries = "".join(f'<t:Entry Key="EmailAddress{i}">{esc(m)}</t:Entry>' for i, m in enumerate(c.emails, 1))
        parts.append(f"<t:EmailAddresses>{entries}</t:EmailAddresses>")
    if w("PhoneNumbers") and c.phones:
        entries = "".join(f'<t:Entry Key="{PHONE_KEYS.get(p.kind, "OtherTelephone")}">{esc(p.number)}</t:Entry>'
                          for p in c.phones)
        parts.append(f"<t:PhoneNumbers>{entries}</t:PhoneNumbers>")
    if w("JobTitle") and c.title:
        parts.append(el("JobTitle", c.title))
    if w("Surname") and c.surname:
        parts.append(el("Surname", c.surname))
    return f"<t:Contact>{''.join(parts)}</t:Contact>"


def calendar_item_xml(entry: MeetingRecord | OccurrenceView, shape: Shape) -> str:
    """A CalendarItem for a single/master (MeetingRecord) or one occurrence (OccurrenceView)."""
    if isinstance(entry, OccurrenceView):
        master, item_id, change_key = entry.master, entry.item_id, entry.change_key
        start, end, subject, location = entry.start, entry.end, entry.subject, entry.location
        item_type = {"single": "Single", "occurrence": "Occurrence", "exception": "Exception"}[entry.kind]
        recurrence_id = entry.original_start
    else:
        master, item_id, change_key = entry, entry.item_id, entry.change_key
        start, end, subject, location = entry.start, entry.end, entry.subject, entry.location
        item_type = "RecurringMaster" if entry.is_recurring else "Single"
        recurrence_id = None
    parts = [item_id_xml(item_id, change_key)]
    if shape.ids_only:
        return f"<t:CalendarItem>{parts[0]}</t:CalendarItem>"
    w = shape.wants
    if w("ItemClass"):
        parts.append("<t:ItemClass>IPM.Appointment</t:ItemClass>")
    if w("Subject"):
        parts.append(el("Subject", subject))
    if w("UID"):
        parts.append(el("UID", master.uid))
    if w("RecurrenceId") and recurrence_id is not None:
        parts.append(f"<t:RecurrenceId>{ews_time(recurrence_id)}</t:RecurrenceId>")
    if w("Start"):
        parts.append(f"<t:Start>{ews_time(start)}</t:Start>")
    if w("End"):
        parts.append(f"<t:End>{ews_time(end)}</t:End>")
    if w("OriginalStart") and recurrence_id is not None:
        parts.append(f"<t:OriginalStart>{ews_time(recurrence_id)}</t:OriginalStart>")
    if w("IsAllDayEvent"):
        parts.append(f"<t:IsAllDayEvent>{str(master.is_all_day).lower()}</t:IsAllDayEvent>")
    if w("Location"):
        parts.append(el("Location", location))
    if w("IsCancelled"):
        parts.append(f"<t:IsCancelled>{str(master.is_cancelled).lower()}</t:IsCancelled>")
    if w("CalendarItemType"):
        parts.append(f"<t:CalendarItemType>{item_type}</t:CalendarItemType>")
    if w("Organizer") and master.organizer_email:
        parts.append(f"<t:Organizer>{mailbox_xml(master.organizer_email, master.organizer_name)}</t:Organizer>")
    if w("RequiredAttendees"):
        parts.append(attendees_xml("RequiredAttendees", (a for a in master.attendees if a.kind == "required")))
    if w("OptionalAttendees"):
        parts.append(attendees_xml("OptionalAttendees", (a for a in master.attendees if a.kind == "optional")))
    if w("Resources"):
        parts.append(attendees_xml("Resources", (a for a in master.attendees if a.kind == "resource")))
    if w("StartTimeZone"):
        zone = master.wire_timezone_id or master.windows_timezone_id
        parts.append(f'<t:StartTimeZone Id="{esc(zone)}" Name="{esc(zone)}"/>')
    if w("EndTimeZone"):
        zone = master.wire_timezone_id or master.windows_timezone_id
        parts.append(f'<t:EndTimeZone Id="{esc(zone)}" Name="{esc(zone)}"/>')
    return f"<t:CalendarItem>{''.join(parts)}</t:CalendarItem>"


def odd_item_xml(item: OddItemRecord, shape: Shape) -> str:
    """A group, message, document or broken contact in a contacts folder, as Exchange sends it."""
    tag, item_class = _ODD_ITEMS.get(item.kind, ("Item", "IPM.Note"))
    parts = [] if item.kind == "malformed" else [item_id_xml(item.item_id, item.change_key)]
    if shape.ids_only:
        return f"<t:{tag}>{''.join(parts)}</t:{tag}>"
    w = shape.wants
    if w("ItemClass"):
        parts.append(f"<t:ItemClass>{item_class}</t:ItemClass>")
    if w("Subject"):
        parts.append(el("Subject", item.display_name))
    if item.kind == "unreadable":
        parts.append(f"<t:Birthday>{UNPARSEABLE_BIRTHDAY}</t:Birthday>")
    if tag in ("Contact", "DistributionList") and w("DisplayName") and item.display_name:
        parts.append(el("DisplayName", item.display_name))
    if item.kind == "group" and w("Members") and item.members:
        members = "".join(f'<t:Member Key="{i}">{mailbox_xml(m, "")}<t:Status>Normal</t:Status></t:Member>'
                          for i, m in enumerate(item.members))
        parts.append(f"<t:Members>{members}</t:Members>")
    return f"<t:{tag}>{''.join(parts)}</t:{tag}>"


def contact_folder_xml(folder_id: str, parent_id: str, record: ContactFolderRecord, total: int,
                       children: int) -> str:
    """A folder below Contacts as FindFolder/GetFolder show it (ids already in the simulator's encoding)."""
    tag = "ContactsFolder" if record.folder_class.lower().startswith("ipf.contact") else "Folder"
    return (f'<t:{tag}><t:FolderId Id="{esc(folder_id)}" ChangeKey="AgAAAA=="/>'
            f'<t:ParentFolderId Id="{esc(parent_id)}" ChangeKey="AgAAAA=="/>'
            f"{el('FolderClass', record.folder_class)}{el('DisplayName', record.name)}"
            f"<t:TotalCount>{total}</t:TotalCount><t:ChildFolderCount>{children}</t:ChildFolderCount>"
            f"<t:UnreadCount>0</t:UnreadCount></t:{tag}>")


def item_xml(entry: Item | OccurrenceView, shape: Shape) -> str:
    """Any item as EWS shows it: one place that knows which element each kind of item is."""
    if isinstance(entry, ContactRecord):
        return contact_xml(entry, shape)
    if isinstance(entry, OddItemRecord):
        return odd_item_xml(entry, shape)
    return calendar_item_xml(entry, shape)
