"""The vendors' XML phonebook documents, one renderer each, built with ElementTree (never by joining
strings: every value is escaped by the serializer, and plugin.phonebook.entries has already dropped what
XML cannot carry). Which structure comes from which published source is in docs/phones.md.

A renderer gets one page of entries (plugin.phonebook.pages cuts it) and returns UTF-8 bytes with the
XML declaration. Formats whose phones show one number per line (Cisco, Snom's minibrowser) list a
contact once per number, the kind after the name when a contact has several.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pbxsync.plugin.phonebook.entries import BookEntry
from pbxsync.sync.model import PhoneKind

TITLE = "Phonebook"
CISCO_PAGE = 32  # Cisco: at most 32 DirectoryEntry items per CiscoIPPhoneDirectory
CISCO_NAME = 32  # Cisco: Name holds at most 32 characters
SNOM_PAGE = 32  # Snom's minibrowser: lines per page (its documentation names no limit; Cisco's is 32)
GIGASET_PAGE = 100  # the most entries one Gigaset answer carries, whatever `count` asks


@dataclass(frozen=True)
class Links:
    """Absolute URLs a paged or searchable document points the phone to ("" = none)."""

    previous: str = ""
    next: str = ""
    search: str = ""  # Cisco: the CiscoIPPhoneInput form
    results: str = ""  # Cisco: where the form sends the query


@dataclass(frozen=True)
class PageOf:
    entries: Sequence[BookEntry]
    total: int  # entries (or lines) in the whole, searched book
    offset: int  # of the first one here, 0-based
    links: Links = Links()
    lines: Sequence[tuple[str, str]] = ()  # Cisco, Snom: this page's (name, number) lines, see `lines`
    list_type: str = "pr"  # Gigaset: the `type` of directory the request asked for


Renderer = Callable[[PageOf], bytes]


DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>\n"  # what ElementTree writes for encoding="utf-8"


def _document(root: ET.Element) -> bytes:
    # Serialized to text and encoded once: ElementTree's encoding="utf-8" path resets a codec per write,
    # three times slower on a 500-contact book.
    return DECLARATION + ET.tostring(root, encoding="unicode").encode("utf-8")


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def lines(entries: Sequence[BookEntry]) -> list[tuple[str, str]]:
    """(name, number) per number: "Bob Smith (mobile)" when Bob has several numbers."""
    out: list[tuple[str, str]] = []
    for entry in entries:
        several = len(entry.numbers) > 1
        for number in entry.numbers:
            out.append((f"{entry.name} ({number.kind})" if several else entry.name, number.dial))
    return out


def _name_parts(entry: BookEntry) -> tuple[str, str]:
    """First and last name; a contact known by one name only ("Reception") is all last name."""
    if entry.first_name or entry.last_name:
        return entry.first_name, entry.last_name
    return "", entry.name


# ---- listings: a frame (the root and what comes before the entries) and one element per entry --------
# A listing's document is the frame's head, each entry's element serialized on its own, and the frame's
# tail: byte for byte what serializing the whole tree gives, so each entry's bytes can be kept and a book
# rendered as a join (plugin.phonebook.fragments).

Item = Callable[[BookEntry], ET.Element]
_HOLE = "pbxsync-entries"  # stands where the entries go; any tag would do, none of ours is this one


@dataclass(frozen=True)
class Listing:
    frame: Callable[[PageOf], ET.Element]
    item: Item

    def split(self, page: PageOf) -> tuple[bytes, bytes]:
        """The document's bytes before and after its entries."""
        root = self.frame(page)
        ET.SubElement(root, _HOLE)
        head, tail = _document(root).split(f"<{_HOLE} />".encode())
        return head, tail

    def render(self, page: PageOf) -> bytes:
        if not page.entries:  # `<AddressBook />`, as the whole tree serializes
            return _document(self.frame(page))
        head, tail = self.split(page)
        return head + b"".join(fragment(self.item(e)) for e in page.entries) + tail


def fragment(item: ET.Element) -> bytes:
    return ET.tostring(item, encoding="unicode").encode("utf-8")


def _yealink_frame(page: PageOf) -> ET.Element:
    root = ET.Element("YealinkIPPhoneDirectory")
    _text(root, "Title", TITLE)
    return root


def _yealink_entry(entry: BookEntry) -> ET.Element:
    item = ET.Element("DirectoryEntry")
    _text(item, "Name", entry.name)
    for number in entry.numbers:
        _text(item, "Telephone", number.dial)
    return item


YEALINK = Listing(_yealink_frame, _yealink_entry)


def yealink(page: PageOf) -> bytes:
    """Yealink's remote XML phone book as its administrator guides describe it (an
    `xxxIPPhoneDirectory` of DirectoryEntry): Title, then per contact a Name and a Telephone per number."""
    return YEALINK.render(page)


_SLOT = {PhoneKind.BUSINESS.value: 0, PhoneKind.MOBILE.value: 1}  # of (office, mobile, other)


def _three_numbers(entry: BookEntry) -> list[str]:
    """Office, mobile, other, for the formats with three number fields (Yealink's Unit Phone1..3,
    Fanvil); a free field takes a number left over, so a contact with three numbers or fewer loses none
    (a fourth has no place)."""
    slots = ["", "", ""]
    rest: list[str] = []
    for number in entry.numbers:
        slot = _SLOT.get(number.kind)
        if slot is not None and not slots[slot]:
            slots[slot] = number.dial
        else:
            rest.append(number.dial)
    for i, value in enumerate(slots):
        if not value and rest:
            slots[i] = rest.pop(0)
    return slots


def yealink_book(page: PageOf) -> bytes:
    """YealinkIPPhoneBook, the layout of the remote phone book template file Yealink hands out (the one
    Yealink's DECT handsets are reported to read): Title, one Menu (a group) of Unit elements whose
    attributes carry the name and up to three numbers. docs/phones.md says what of it is confirmed."""
    root = ET.Element("YealinkIPPhoneBook")
    _text(root, "Title", TITLE)
    menu = ET.SubElement(root, "Menu", {"Name": TITLE})
    for entry in page.entries:
        phone1, phone2, phone3 = _three_numbers(entry)
        ET.SubElement(menu, "Unit", {"Name": entry.name, "Phone1": phone1, "Phone2": phone2, "Phone3": phone3,
                                     "default_photo": "Resource:"})
    return _document(root)


def _fanvil_entry(entry: BookEntry) -> ET.Element:
    item = ET.Element("DirectoryEntry")
    _text(item, "Name", entry.name)
    for tag, dial in zip(("Telephone", "Mobile", "Other"), _three_numbers(entry), strict=True):
        if dial:
            _text(item, tag, dial)
    return item


FANVIL = Listing(lambda page: ET.Element("FanvilIPPhoneDirectory", {"clearlight": "true"}), _fanvil_entry)


def fanvil(page: PageOf) -> bytes:
    """FanvilIPPhoneDirectory: per contact a DirectoryEntry with Name and at most three numbers, each
    under its kind's element (Telephone the office number, Mobile, Other), as the open-source generator
    that cites Fanvil's XML phonebook document writes it; an empty one is left out."""
    return FANVIL.render(page)


def snom(page: PageOf) -> bytes:
    """SnomIPPhoneDirectory (the minibrowser): one DirectoryEntry per number, this page's lines, and
    SoftKeyItems (Label, URL, Name = the key) for the previous and next pages."""
    root = ET.Element("SnomIPPhoneDirectory")
    _text(root, "Title", TITLE)
    for name, number in page.lines:
        item = ET.SubElement(root, "DirectoryEntry")
        _text(item, "Name", name)
        _text(item, "Telephone", number)
    for label, url, key in (("Prev", page.links.previous, "F2"), ("Next", page.links.next, "F4")):
        if url:
            softkey = ET.SubElement(root, "SoftKeyItem")
            _text(softkey, "Label", label)
            _text(softkey, "URL", url)
            _text(softkey, "Name", key)
    return _document(root)


def _input_form(root_tag: str, page: PageOf) -> bytes:
    """The search form Cisco and Snom share: the phone sends what was typed as `q` to `links.results`."""
    root = ET.Element(root_tag)
    _text(root, "Title", TITLE)
    _text(root, "Prompt", "Name or number")
    _text(root, "URL", page.links.results)
    item = ET.SubElement(root, "InputItem")
    _text(item, "DisplayName", "Name or number")
    _text(item, "QueryStringParam", "q")
    _text(item, "DefaultValue", "")
    _text(item, "InputFlags", "A")
    return _document(root)


def snom_search(page: PageOf) -> bytes:
    """SnomIPPhoneInput: the minibrowser's search form."""
    return _input_form("SnomIPPhoneInput", page)


_TBOOK_TYPES = {PhoneKind.BUSINESS.value: "business", PhoneKind.MOBILE.value: "mobile",
                PhoneKind.HOME.value: "home"}  # other kinds: "fixed"


def snom_tbook(page: PageOf) -> bytes:
    """Snom's remote XML directory, tbook version 2.0: contact, first_name, last_name, numbers/number."""
    return SNOM_TBOOK.render(page)


def _tbook_contact(entry: BookEntry) -> ET.Element:
    contact = ET.Element("contact", {"fav": "false", "vip": "false", "blocked": "false"})
    first, last = _name_parts(entry)
    _text(contact, "first_name", first)
    _text(contact, "last_name", last)
    if entry.company:
        _text(contact, "organization", entry.company)
    numbers = ET.SubElement(contact, "numbers")
    for number in entry.numbers:
        ET.SubElement(numbers, "number", {"no": number.dial, "type": _TBOOK_TYPES.get(number.kind, "fixed"),
                                          "outgoing_id": "0"})
    return contact


SNOM_TBOOK = Listing(lambda page: ET.Element("tbook", {"e": "2", "version": "2.0", "complete": "true"}),
                     _tbook_contact)


def grandstream(page: PageOf) -> bytes:
    """Grandstream AddressBook: Contact with LastName, FirstName and a Phone (phonenumber, accountindex)
    per number."""
    return GRANDSTREAM.render(page)


def _grandstream_contact(entry: BookEntry) -> ET.Element:
    contact = ET.Element("Contact")
    first, last = _name_parts(entry)
    _text(contact, "LastName", last)
    _text(contact, "FirstName", first)
    for number in entry.numbers:
        phone = ET.SubElement(contact, "Phone")
        _text(phone, "phonenumber", number.dial)
        _text(phone, "accountindex", "0")
    return contact


GRANDSTREAM = Listing(lambda page: ET.Element("AddressBook"), _grandstream_contact)


def _softkey(root: ET.Element, name: str, url: str, position: int) -> None:
    key = ET.SubElement(root, "SoftKeyItem")
    _text(key, "Name", name)
    _text(key, "URL", url)
    _text(key, "Position", str(position))


def cisco(page: PageOf) -> bytes:
    """CiscoIPPhoneDirectory: Title, Prompt, up to 32 DirectoryEntry (Name, Telephone), SoftKeyItems.
    The page's `lines` are already cut to this page (plugin.phonebook.pages)."""
    root = ET.Element("CiscoIPPhoneDirectory")
    _text(root, "Title", TITLE)
    shown = page.lines
    first = page.offset + 1 if shown else 0
    _text(root, "Prompt", f"{first}-{page.offset + len(shown)} of {page.total}")
    for name, number in shown:
        item = ET.SubElement(root, "DirectoryEntry")
        _text(item, "Name", name[:CISCO_NAME])
        _text(item, "Telephone", number)
    _softkey(root, "Dial", "SoftKey:Dial", 1)
    _softkey(root, "EditDial", "SoftKey:EditDial", 2)
    position = 3
    for name, url in (("Prev", page.links.previous), ("Next", page.links.next), ("Search", page.links.search)):
        if url:
            _softkey(root, name, url, position)
            position += 1
    _softkey(root, "Exit", "SoftKey:Exit", position)
    return _document(root)


def cisco_search(page: PageOf) -> bytes:
    """CiscoIPPhoneInput: the search form."""
    return _input_form("CiscoIPPhoneInput", page)


def gigaset(page: PageOf) -> bytes:
    """Gigaset's online directory answer: list (response, type as asked, total, first, last) of entry
    (ln, fn, hm for the first fixed line, mb for the first mobile)."""
    return GIGASET.render(page)


def _gigaset_list(page: PageOf) -> ET.Element:
    shown = len(page.entries)
    attributes = {"response": "get_list", "type": page.list_type, "total": str(page.total)}
    if shown:
        attributes |= {"first": str(page.offset + 1), "last": str(page.offset + shown)}
    return ET.Element("list", attributes)


def _gigaset_entry(entry: BookEntry) -> ET.Element:
    item = ET.Element("entry")
    first, last = _name_parts(entry)
    _text(item, "ln", last)
    if first:
        _text(item, "fn", first)
    fixed = entry.numbers_of(PhoneKind.BUSINESS, PhoneKind.HOME, PhoneKind.OTHER)
    mobile = entry.numbers_of(PhoneKind.MOBILE)
    if fixed or not mobile:
        _text(item, "hm", fixed[0] if fixed else entry.first_number())
    if mobile:
        _text(item, "mb", mobile[0])
    return item


GIGASET = Listing(_gigaset_list, _gigaset_entry)
