"""The attributes this directory serves: one row per attribute, and everything else derived from the table.

A row says what an attribute is called (its name as served, its OID and the other names clients use),
where a contact's values come from, how assertions compare (names case-insensitively, numbers by their
digit forms), and which index serves substring searches on it. Positions are row numbers: every entry's
values are kept per position, and attributes are sent in table order.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

from pbxsync.sync.model import PhoneKind


class Matching(Enum):
    """How an assertion on the attribute compares."""

    NAME = "caseIgnoreMatch"  # case-insensitive, insignificant spaces ignored (see `fold`)
    NUMBER = "telephoneNumberMatch"  # by digit forms, whatever the formatting (see plugin.ldap.numbers)
    CLASS = "objectIdentifierMatch"  # objectClass: every entry has one, `(objectClass=*)` matches all


class Source(Enum):
    """Where a contact's values of the attribute come from (see plugin.ldap.build.contact_values)."""

    CLASSES = "the entry's object classes"  # PERSON_CLASSES for contacts, BASE_CLASSES for the base entry
    UID = "a hash of the owner mailbox and Exchange item id"
    CN = "display name, else given name + surname, else first e-mail, else uid"
    SURNAME = "surname, else cn (person requires sn)"
    GIVEN_NAME = "given name"
    COMPANY = "company"
    TITLE = "job title"
    EMAILS = "e-mail addresses"
    PHONES = "phone numbers of the row's kinds"
    BASE_RDN = "the base DN's ou value (the base entry only)"


NUMBER_GRAM = 4  # digit n-gram length of a number index; shorter fragments are scanned instead
TEXT_GRAM = 3  # n-gram length (UTF-8 bytes) of a name index


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str  # as served
    oid: str
    aliases: tuple[str, ...]  # other names clients send (compared case-insensitively)
    source: Source
    matching: Matching = Matching.NAME
    same_as: str = ""  # served from another attribute's values (its columns and index are shared)
    phone_kinds: tuple[PhoneKind, ...] = ()  # Source.PHONES: the stored kinds this attribute carries
    gram: int = 0  # n-gram index length for `*x*` searches; 0: none (a column scan)


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("objectClass", "2.5.4.0", (), Source.CLASSES, Matching.CLASS),
    Attribute("uid", "0.9.2342.19200300.100.1.1", ("userid",), Source.UID),
    Attribute("cn", "2.5.4.3", ("commonName",), Source.CN, gram=TEXT_GRAM),
    Attribute("displayName", "2.16.840.1.113730.3.1.241", (), Source.CN, same_as="cn"),
    Attribute("sn", "2.5.4.4", ("surname",), Source.SURNAME, gram=TEXT_GRAM),
    Attribute("givenName", "2.5.4.42", ("gn",), Source.GIVEN_NAME),
    Attribute("o", "2.5.4.10", ("organizationName",), Source.COMPANY),
    Attribute("title", "2.5.4.12", (), Source.TITLE),
    Attribute("mail", "0.9.2342.19200300.100.1.3", ("rfc822Mailbox",), Source.EMAILS),
    # A stored kind no row names (a store from a newer version) is served as telephoneNumber too.
    Attribute("telephoneNumber", "2.5.4.20", (), Source.PHONES, Matching.NUMBER,
              phone_kinds=(PhoneKind.BUSINESS, PhoneKind.OTHER), gram=NUMBER_GRAM),
    Attribute("mobile", "0.9.2342.19200300.100.1.41", ("mobileTelephoneNumber",), Source.PHONES, Matching.NUMBER,
              phone_kinds=(PhoneKind.MOBILE,), gram=NUMBER_GRAM),
    Attribute("homePhone", "0.9.2342.19200300.100.1.20", ("homeTelephoneNumber",), Source.PHONES, Matching.NUMBER,
              phone_kinds=(PhoneKind.HOME,), gram=NUMBER_GRAM),
    Attribute("facsimileTelephoneNumber", "2.5.4.23", ("fax",), Source.PHONES, Matching.NUMBER,
              phone_kinds=(PhoneKind.FAX,), gram=NUMBER_GRAM),
    # Few contacts have one and phones search it by equality: no n-gram index (a column scan for *x*).
    Attribute("pager", "0.9.2342.19200300.100.1.42", ("pagerTelephoneNumber",), Source.PHONES, Matching.NUMBER,
              phone_kinds=(PhoneKind.PAGER,)),
    Attribute("ou", "2.5.4.11", ("organizationalUnitName",), Source.BASE_RDN),
)

PERSON_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")  # every contact entry
BASE_CLASSES = ("top", "organizationalUnit")  # the phonebook's base entry

# ---- derived from the table -----------------------------------------------------------------------------

NAMES = tuple(a.name for a in ATTRIBUTES)
ATTR_COUNT = len(ATTRIBUTES)
_POSITION = {a.name: pos for pos, a in enumerate(ATTRIBUTES)}

OBJECT_CLASS, UID, CN, DISPLAY_NAME, SN, GIVEN_NAME, ORG, TITLE, MAIL, TELEPHONE, MOBILE, HOME_PHONE, FAX, OU = (
    _POSITION[name] for name in ("objectClass", "uid", "cn", "displayName", "sn", "givenName", "o", "title", "mail",
                                 "telephoneNumber", "mobile", "homePhone", "facsimileTelephoneNumber", "ou"))

NUMBER_ATTRS = frozenset(pos for pos, a in enumerate(ATTRIBUTES) if a.matching is Matching.NUMBER)
# What a contact holds values of, each in columns of its own (object classes are the same for every
# contact, ou only the base entry has, an attribute `same_as` another shares that one's columns).
STORED = tuple(pos for pos, a in enumerate(ATTRIBUTES)
               if a.source not in (Source.CLASSES, Source.BASE_RDN) and not a.same_as)
SHARED = tuple((pos, _POSITION[a.same_as]) for pos, a in enumerate(ATTRIBUTES) if a.same_as)  # (pos, source pos)
GRAMS = tuple((pos, a.gram) for pos, a in enumerate(ATTRIBUTES) if a.gram)  # (pos, n) of the n-gram indexes
_PHONE_POSITION = {kind.value: pos for pos, a in enumerate(ATTRIBUTES) for kind in a.phone_kinds}

_ALIASES = {alias.lower(): pos for pos, a in enumerate(ATTRIBUTES) for alias in (a.name, a.oid, *a.aliases)}


def attribute_index(name: str) -> int | None:
    """Position of an attribute description (case-insensitive, options like `;lang-de` ignored)."""
    return _ALIASES.get(name.split(";", 1)[0].strip().lower())


def phone_position(kind: str) -> int:
    """The attribute a stored phone number of this kind is served as."""
    return _PHONE_POSITION.get(kind, TELEPHONE)


_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def has_control(value: str) -> bool:
    """Whether `value` holds a character `clean` drops (so no stored value can contain it)."""
    return _CONTROL.search(value) is not None


def clean(value: str, limit: int = 1024) -> str:
    """A stored value as served: control characters dropped, bounded length."""
    return _CONTROL.sub("", value).strip()[:limit]


def fold(value: str) -> str:
    """caseIgnoreMatch with insignificant-space handling: what names are compared as."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", value).casefold()).strip()


def fold_fragment(value: str) -> str:
    """Like `fold` but keeps a leading/trailing space: a substring component may end at a word edge."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", value).casefold())


def approx_key(value: str) -> str:
    """Accents and punctuation dropped: "Müller" ~= "muller"."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(c for c in decomposed if c.isalnum() or c == " ").strip()
