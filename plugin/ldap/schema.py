"""The attributes this directory serves: names, aliases, OIDs and how each one matches."""

from __future__ import annotations

import re
import unicodedata

# Attribute positions in every entry's value tuples. The order is also the order they are sent in.
OBJECT_CLASS, UID, CN, DISPLAY_NAME, SN, GIVEN_NAME, ORG, TITLE, MAIL, TELEPHONE, MOBILE, HOME_PHONE, FAX, OU = \
    range(14)

NAMES = ("objectClass", "uid", "cn", "displayName", "sn", "givenName", "o", "title", "mail",
         "telephoneNumber", "mobile", "homePhone", "facsimileTelephoneNumber", "ou")
NUMBER_ATTRS = frozenset({TELEPHONE, MOBILE, HOME_PHONE, FAX})
ATTR_COUNT = len(NAMES)

_ALIASES = {
    "objectclass": OBJECT_CLASS, "2.5.4.0": OBJECT_CLASS,
    "uid": UID, "userid": UID, "0.9.2342.19200300.100.1.1": UID,
    "cn": CN, "commonname": CN, "2.5.4.3": CN,
    "displayname": DISPLAY_NAME, "2.16.840.1.113730.3.1.241": DISPLAY_NAME,
    "sn": SN, "surname": SN, "2.5.4.4": SN,
    "givenname": GIVEN_NAME, "gn": GIVEN_NAME, "2.5.4.42": GIVEN_NAME,
    "o": ORG, "organizationname": ORG, "2.5.4.10": ORG,
    "title": TITLE, "2.5.4.12": TITLE,
    "mail": MAIL, "rfc822mailbox": MAIL, "0.9.2342.19200300.100.1.3": MAIL,
    "telephonenumber": TELEPHONE, "2.5.4.20": TELEPHONE,
    "mobile": MOBILE, "mobiletelephonenumber": MOBILE, "0.9.2342.19200300.100.1.41": MOBILE,
    "homephone": HOME_PHONE, "hometelephonenumber": HOME_PHONE, "0.9.2342.19200300.100.1.20": HOME_PHONE,
    "facsimiletelephonenumber": FAX, "fax": FAX, "2.5.4.23": FAX,
    "ou": OU, "organizationalunitname": OU, "2.5.4.11": OU,
}


def attribute_index(name: str) -> int | None:
    """Position of an attribute description (case-insensitive, options like `;lang-de` ignored)."""
    return _ALIASES.get(name.split(";", 1)[0].strip().lower())


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
