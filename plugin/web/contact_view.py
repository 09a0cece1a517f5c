"""What *My contacts* shows of a stored contact: plain data for the template and the JSON endpoint.

Each number in national and international form (from its stored E.164 form, read with `phonenumbers`);
a number without one (an internal extension, a `sip:` address) is shown as typed. `index` is the number's
place in the contact, which the click-to-call form sends back (never the number itself).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import phonenumbers

from pbxsync.plugin.web.click_to_call import dialable
from pbxsync.sync.errors import ValidationError
from pbxsync.sync.model import PhoneNumber
from pbxsync.sync.store.contacts import StoredContact

KIND_WORDS = {"business": "Business", "mobile": "Mobile", "home": "Home", "fax": "Fax", "pager": "Pager",
              "other": "Other"}


@dataclass(frozen=True)
class NumberView:
    index: int
    kind: str
    national: str
    international: str
    callable: bool


@dataclass(frozen=True)
class ContactView:
    id: int
    name: str
    company: str
    title: str
    numbers: tuple[NumberView, ...]

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def number_forms(number: PhoneNumber) -> tuple[str, str]:
    """(national, international) display forms; ("as typed", "") when the number has no E.164 form."""
    if number.e164:
        try:
            parsed = phonenumbers.parse(number.e164, None)
        except phonenumbers.NumberParseException:
            return number.raw, number.e164
        return (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    return number.raw, ""


def _callable(number: PhoneNumber) -> bool:
    try:
        dialable(number)
    except ValidationError:
        return False
    return True


def contact_view(stored: StoredContact) -> ContactView:
    c = stored.contact
    name = c.display_name or " ".join(p for p in (c.given_name, c.surname) if p) or c.company or "(no name)"
    numbers = tuple(NumberView(i, KIND_WORDS.get(p.kind.value, "Other"), *number_forms(p), _callable(p))
                    for i, p in enumerate(c.phones))
    return ContactView(stored.id, name, c.company, c.title, numbers)
