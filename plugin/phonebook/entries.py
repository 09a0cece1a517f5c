"""A phonebook entry as phones show it: a clean name and the numbers in the form the phone dials.

Built from the rows LDAP reads (plugin.ldap.build: `iter_contacts` and `common_name`, so the name a
phone shows over XML is the `cn` it shows over LDAP). Values from Exchange are hostile: characters XML 1.0
cannot carry (C0 controls, U+FFFE, lone surrogates) and the bidirectional controls that turn a name
around on the display (RTL override, isolates) are dropped, white space is collapsed and names are cut
at NAME_LIMIT characters, so a 10 KB name costs the phone nothing.

Numbers: a number with an E.164 form (sync.phones) is written as `[phonebook] number_format` says —
`national` (a number of the default region with its trunk prefix, others with the international call
prefix: what a desk phone behind a PBX dials), `international` (always the international call prefix)
or `e164` (`+4930...`) — with `[phonebook] dial_prefix` (the outside line) before it, except in e164
form. A number without one (an internal extension like `4711`) is its digits, with no prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pbxsync.plugin.ldap.build import ContactRow, PhoneRow, common_name
from pbxsync.plugin.ldap.numbers import NumberForms, only_digits
from pbxsync.plugin.ldap.schema import fold
from pbxsync.sync.model import PhoneKind

NAME_LIMIT = 128  # characters; desk phones show 20-40
# XML 1.0 forbids these (ElementTree would write them and the document would not parse), and the
# bidirectional controls can make "Alice" read as "ecilA" on a phone's display.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")

# The kinds of number a phone book shows, in the order phones list them.
KIND_ORDER = (PhoneKind.BUSINESS, PhoneKind.MOBILE, PhoneKind.HOME, PhoneKind.OTHER, PhoneKind.PAGER,
              PhoneKind.FAX)
_RANK = {kind.value: i for i, kind in enumerate(KIND_ORDER)}
_KINDS = {kind.value: kind.value for kind in KIND_ORDER}


def clean_text(value: str, limit: int = NAME_LIMIT) -> str:
    """A value from Exchange as a phone may show it (see the module docstring)."""
    return _SPACE.sub(" ", _UNSAFE.sub("", value)).strip()[:limit]


@dataclass(frozen=True, slots=True)
class Number:
    kind: str  # a PhoneKind value
    dial: str  # digits as the phone dials them (`+` first in e164 form)
    international: str = ""  # the E.164 digits without `+` ("" for an internal number): for searches


@dataclass(frozen=True, slots=True)
class BookEntry:
    name: str  # what LDAP serves as cn, cleaned
    first_name: str
    last_name: str
    company: str
    numbers: tuple[Number, ...]  # in KIND_ORDER, without duplicates
    search_name: str  # folded name, first and last name and company: what a name search looks in

    def numbers_of(self, *kinds: PhoneKind) -> list[str]:
        wanted = {k.value for k in kinds}
        return [n.dial for n in self.numbers if n.kind in wanted]

    def first_number(self) -> str:
        return self.numbers[0].dial if self.numbers else ""


class Dialer:
    """Stored numbers as the phone dials them (see the module docstring)."""

    def __init__(self, forms: NumberForms, number_format: str, dial_prefix: str) -> None:
        self.forms = forms
        self.number_format = number_format
        self.prefix = dial_prefix

    def number(self, phone: PhoneRow) -> Number | None:
        """One stored number as the phone dials it; None when it holds no digit."""
        kind = _KINDS.get(phone.kind, PhoneKind.OTHER.value)  # one string per kind, not one per number
        e164 = phone.e164 or self.forms.parse_e164(phone.raw)
        if not e164:
            digits = phone.digits or only_digits(phone.raw)
            return Number(kind, digits) if digits else None
        international = e164.lstrip("+")
        cc = self.forms.country_code
        if self.number_format == "e164":
            dial = "+" + international
        elif self.number_format == "national" and cc and international.startswith(cc):
            dial = self.prefix + self.forms.trunk_prefix + international[len(cc):]
        else:
            dial = self.prefix + self.forms.international_prefix + international
        return Number(kind, dial, international)


def book_entry(row: ContactRow, phones: Iterable[PhoneRow], dialer: Dialer) -> BookEntry:
    name = clean_text(common_name(row))
    first, last, company = clean_text(row.given_name), clean_text(row.surname), clean_text(row.company)
    seen: set[str] = set()
    numbers: list[Number] = []
    for phone in sorted(phones, key=lambda p: _RANK.get(p.kind, len(_RANK))):
        number = dialer.number(phone)
        if number is not None and number.dial not in seen:
            seen.add(number.dial)
            numbers.append(number)
    return BookEntry(name, first, last, company, tuple(numbers), _search_name(name, first, last, company))


def _search_name(name: str, first: str, last: str, company: str) -> str:
    search = fold(name)
    for part in (first, last, company):  # only what the name does not hold already ("Anna Weiß", "Anna")
        folded = fold(part)
        if folded and folded not in search:
            search = f"{search} {folded}"
    return search


# Packed form (plugin.phonebook.book keeps every entry so): fields split by US, a number's parts by RS.
# clean_text has dropped both from every value, and kinds, digits and folded names never hold them.
_FIELD, _PART = "\x1f", "\x1e"


def pack(entry: BookEntry) -> str:
    """One string for an entry (~0.25 KB instead of ~0.85 KB of objects); `unpack` gives it back."""
    numbers = (f"{n.kind}{_PART}{n.dial}{_PART}{n.international}" for n in entry.numbers)
    return _FIELD.join((entry.name, entry.first_name, entry.last_name, entry.company, entry.search_name, *numbers))


def unpack(packed: str) -> BookEntry:
    name, first, last, company, search_name, *numbers = packed.split(_FIELD)
    parts = (n.split(_PART) for n in numbers)
    return BookEntry(name, first, last, company, tuple(Number(_KINDS.get(k, k), d, i) for k, d, i in parts),
                     search_name)


def matches(entry: BookEntry, query: str) -> bool:
    """A phone's search: every word of the query in the name (case-insensitive), or the query's digits
    (three or more) in one of the numbers, as dialled or international (`+49 30 1234`, `0049 30 1234`)."""
    digits = only_digits(query)
    if len(digits) >= 3 and len(digits) * 2 >= len(query.replace(" ", "")):
        forms = {digits, digits.removeprefix("00")}
        return any(f in n.dial or f in n.international for n in entry.numbers for f in forms)
    words = fold(query).split()
    return all(word in entry.search_name for word in words)
