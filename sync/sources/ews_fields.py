"""Two things exchangelib 5.6 does not do for pbxsync's calendar reads, added to its CalendarItem at import.

1. CalendarItem.EnhancedLocation is not defined. Exchange 2013 and later keep a place chosen in Outlook's
   location picker in `EnhancedLocation` (EnhancedLocationType: DisplayName, Annotation, PostalAddress;
   field URI `calendar:EnhancedLocation`, in types.xsd right after NetShowUrl), so a `PBX` picked there
   would be invisible. The field is added through exchangelib's public `add_field` (the way `register`
   adds extended properties). tests/unit/test_ews_enhanced_location.py pins that exchangelib still lacks
   it (drop this part when it stops lacking it) and that the field parses Microsoft's published element.

2. Attendees are parsed through exchangelib's generic field machinery, about 0.2 ms each: a meeting with
   500 attendees costs ~100 ms per copy, per mailbox holding one. pbxsync reads four values of each
   (name, address, mailbox type, response), so while `lean_attendees()` is active in a thread the three
   attendee lists are read straight from the XML into small read-only records with the same attribute
   names (`.mailbox.email_address`, `.mailbox.name`, `.mailbox.mailbox_type`, `.response_type`). Outside
   it (any other exchangelib use in the process) parsing is exchangelib's own. Pinned by
   tests/unit/test_ews_lean_attendees.py: the same values as exchangelib's objects, many times faster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from exchangelib.fields import AttendeesField, EWSElementField, InvalidField, TextField
from exchangelib.items import CalendarItem
from exchangelib.properties import EWSElement
from exchangelib.util import TNS
from exchangelib.version import EXCHANGE_2013, Build

FIELD_NAME = "enhanced_location"
SUPPORTED_FROM = Build(15, 0)  # Exchange 2013


class EnhancedLocation(EWSElement):  # type: ignore[misc]  # exchangelib has no type hints
    """The parts pbxsync reads: the place's display name (a postal address is never a dial rule)."""

    ELEMENT_NAME = "EnhancedLocation"

    display_name = TextField(field_uri="DisplayName")
    annotation = TextField(field_uri="Annotation")


ATTENDEE_FIELDS = ("required_attendees", "optional_attendees", "resources")
_LEAN = threading.local()
_ATTENDEE, _MAILBOX = f"{{{TNS}}}Attendee", f"{{{TNS}}}Mailbox"
_NAME, _EMAIL, _TYPE, _RESPONSE = (f"{{{TNS}}}{tag}" for tag in ("Name", "EmailAddress", "MailboxType",
                                                                   "ResponseType"))


@dataclass(frozen=True, slots=True)
class LeanMailbox:
    name: str | None
    email_address: str | None
    mailbox_type: str | None


@dataclass(frozen=True, slots=True)
class LeanAttendee:
    mailbox: LeanMailbox
    response_type: str | None


@contextmanager
def lean_attendees() -> Iterator[None]:
    """Within the block (in this thread), CalendarItem attendee lists are read as Lean* records."""
    before = getattr(_LEAN, "on", False)
    _LEAN.on = True
    try:
        yield
    finally:
        _LEAN.on = before


class _LeanAttendeesField(AttendeesField):  # type: ignore[misc]  # exchangelib has no type hints
    def from_xml(self, elem: Any, account: Any) -> Any:
        if not getattr(_LEAN, "on", False):
            return super().from_xml(elem, account)
        container = elem.find(self.response_tag())
        if container is None:
            return self.default
        found = []
        for attendee in container.iterchildren(_ATTENDEE):
            box = attendee.find(_MAILBOX)
            mailbox = LeanMailbox(box.findtext(_NAME), box.findtext(_EMAIL), box.findtext(_TYPE)) \
                if box is not None else LeanMailbox(None, None, None)
            found.append(LeanAttendee(mailbox, attendee.findtext(_RESPONSE)))
        return found


def _install() -> None:
    try:
        CalendarItem.get_field_by_fieldname(FIELD_NAME)
    except InvalidField:
        CalendarItem.add_field(EWSElementField(
            FIELD_NAME, field_uri="calendar:EnhancedLocation", value_cls=EnhancedLocation, is_read_only=True,
            is_searchable=False, supported_from=EXCHANGE_2013), insert_after="net_show_url")
    names = [f.name for f in CalendarItem.FIELDS]
    for name in ATTENDEE_FIELDS:
        field = CalendarItem.get_field_by_fieldname(name)
        if isinstance(field, _LeanAttendeesField):
            continue  # installed already
        before = names[names.index(name) - 1]
        CalendarItem.remove_field(field)
        CalendarItem.add_field(_LeanAttendeesField(name, field_uri=field.field_uri, is_searchable=False),
                               insert_after=before)


_install()
