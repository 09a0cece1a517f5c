"""XML text helpers for the EWS simulator: escaping that always yields well-formed XML, and item rendering.

Element names, namespaces and value spellings follow Microsoft's published EWS examples
(learn.microsoft.com "... operation" pages) and the schema order of types.xsd.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pbxsync.sync.simulator.records import (
    CUSTOM_TIMEZONE,
    AttendeeRecord,
    ContactFolderRecord,
    ContactRecord,
    Item,
    MeetingRecord,
    OccurrenceView,
    OddItemRecord,
    own_response,
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


_SENSITIVITY_NAMES = {"normal": "Normal", "personal": "Personal", "private": "Private",
                      "confidential": "Confidential"}


@dataclass(frozen=True)
class Viewer:
    """Whose copy of a calendar item is shown: its owner's answer (MyResponseType) and how the directory
    types each address (MailboxType: Mailbox, PublicDL, GroupMailbox, OneOff)."""

    mailbox: str = ""
    mailbox_type: Callable[[str], str] = lambda address: "Mailbox"


def mailbox_xml(email: str, name: str, mailbox_type: str = "Mailbox") -> str:
    routing = "EX" if email.startswith("/") else "SMTP"  # internal senders may show as X.500 (legacyExchangeDN)
    return (f"<t:Mailbox>{el('Name', name or email)}{el('EmailAddress', email)}"
            f"<t:RoutingType>{routing}</t:RoutingType><t:MailboxType>{esc(mailbox_type)}</t:MailboxType></t:Mailbox>")


def attendees_xml(tag: str, attendees: Iterable[AttendeeRecord], viewer: Viewer = Viewer()) -> str:
    inner = "".join(f"<t:Attendee>{mailbox_xml(a.email, a.name, viewer.mailbox_type(a.email))}"
                    f"<t:ResponseType>{_RESPONSE_NAMES.get(a.response, 'Unknown')}</t:ResponseType></t:Attendee>"
                    for a in attendees)
    return f"<t:{tag}>{inner}</t:{tag}>" if inner else ""


def _duration(offset: timedelta) -> str:
    """An xs:duration for a TimeZoneDefinition Bias (minutes to add to local time to get UTC)."""
    minutes = -int(offset.total_seconds() // 60)
    sign, minutes = ("-" if minutes < 0 else ""), abs(minutes)
    return f"{sign}PT{minutes // 60}H{minutes % 60}M" if minutes % 60 else f"{sign}PT{minutes // 60}H"


def timezone_xml(tag: str, master: MeetingRecord) -> str:
    """StartTimeZone/EndTimeZone: the zone's id, or for a custom zone (one Exchange knows only by its
    rules, e.g. from an iCalendar invitation) the whole TimeZoneDefinition with one fixed period."""
    zone = master.wire_timezone_id or master.windows_timezone_id
    if zone != CUSTOM_TIMEZONE:
        return f'<t:{tag} Id="{esc(zone)}" Name="{esc(zone)}"/>'
    bias = _duration(master.start.astimezone(master.tz).utcoffset() or timedelta())
    return (f'<t:{tag} Id="{CUSTOM_TIMEZONE}" Name="{CUSTOM_TIMEZONE}"><t:Periods>'
            f'<t:Period Bias="{bias}" Name="Standard" Id="Std"/></t:Periods><t:TransitionsGroups>'
            '<t:TransitionsGroup Id="0"><t:Transition><t:To Kind="Period">Std</t:To></t:Transition>'
            '</t:TransitionsGroup></t:TransitionsGroups><t:Transitions><t:Transition><t:To Kind="Group">0</t:To>'
            f"</t:Transition></t:Transitions></t:{tag}>")


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


def calendar_item_xml(entry: MeetingRecord | OccurrenceView, shape: Shape, viewer: Viewer = Viewer()) -> str:
    """A CalendarItem for a single/master (MeetingRecord) or one occurrence (OccurrenceView), in the
    schema order of types.xsd (ItemType's elements, then CalendarItemType's)."""
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
    if w("Sensitivity"):
        parts.append(f"<t:Sensitivity>{_SENSITIVITY_NAMES.get(master.sensitivity, 'Normal')}</t:Sensitivity>")
    if "Body" in shape.fields:  # only when asked for by name, as FindItem never returns it
        body_type = "HTML" if master.body_html else "Text"
        parts.append(f'<t:Body BodyType="{body_type}">{esc(master.body)}</t:Body>')
    if w("UID") and master.has_uid:
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
    if w("LegacyFreeBusyStatus") and master.show_as:
        parts.append(el("LegacyFreeBusyStatus", master.show_as))
    if w("Location"):
        parts.append(el("Location", location))
    if w("IsCancelled"):
        parts.append(f"<t:IsCancelled>{str(master.is_cancelled).lower()}</t:IsCancelled>")
    if w("CalendarItemType"):
        parts.append(f"<t:CalendarItemType>{item_type}</t:CalendarItemType>")
    if w("MyResponseType") and viewer.mailbox:
        answer = _RESPONSE_NAMES.get(own_response(master, viewer.mailbox), "Unknown")
        parts.append(f"<t:MyResponseType>{answer}</t:MyResponseType>")
    if w("Organizer") and master.organizer_email:
        organizer = mailbox_xml(master.organizer_email, master.organizer_name,
                                viewer.mailbox_type(master.organizer_email))
        parts.append(f"<t:Organizer>{organizer}</t:Organizer>")
    for tag, kind in (("RequiredAttendees", "required"), ("OptionalAttendees", "optional"), ("Resources", "resource")):
        if w(tag):
            parts.append(attendees_xml(tag, (a for a in master.attendees if a.kind == kind), viewer))
    if w("StartTimeZone"):
        parts.append(timezone_xml("StartTimeZone", master))
    if w("EndTimeZone"):
        parts.append(timezone_xml("EndTimeZone", master))
    if w("IsOnlineMeeting"):
        parts.append(f"<t:IsOnlineMeeting>{str(master.online_meeting).lower()}</t:IsOnlineMeeting>")
    if w("EnhancedLocation") and master.locations:
        parts.append(f"<t:EnhancedLocation>{el('DisplayName', '; '.join(master.locations))}<t:Annotation/>"
                     "</t:EnhancedLocation>")
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


def item_xml(entry: Item | OccurrenceView, shape: Shape, viewer: Viewer = Viewer()) -> str:
    """Any item as EWS shows it: one place that knows which element each kind of item is."""
    if isinstance(entry, ContactRecord):
        return contact_xml(entry, shape)
    if isinstance(entry, OddItemRecord):
        return odd_item_xml(entry, shape)
    return calendar_item_xml(entry, shape, viewer)
