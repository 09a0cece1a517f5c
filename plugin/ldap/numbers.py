"""Phone numbers as LDAP matches them: every form a user might type, as digit strings.

The store keeps `e164` (when parseable with `[sync] default_region`) and `digits` for every number. A
phone searching `030 1234 4711`, `+49 30 12344711`, `0049301234...` or `*4711*` must find the same
contact, so each stored number is indexed under its international digits (`493012344711`), the same
with the region's international call prefix (`00493012344711`), the national form with the trunk
prefix (`03012344711`, only for numbers of the default region) and the raw digits. Assertions are
reduced to digits; an equality assertion is additionally parsed with `phonenumbers` the same way the
sync side parses stored numbers (E.164 when parseable, else digits).
"""

from __future__ import annotations

import re

import phonenumbers

from sync.phones import normalise_number

_NOT_DIGIT = re.compile(r"[^0-9]+")


def only_digits(text: str) -> str:
    return _NOT_DIGIT.sub("", text)


class NumberForms:
    def __init__(self, region: str) -> None:
        self.region = region.upper()
        code = phonenumbers.country_code_for_region(self.region)
        self.country_code = str(code) if code else ""
        meta = phonenumbers.PhoneMetadata.metadata_for_region(self.region, None)
        trunk = (meta.national_prefix if meta is not None else None) or ""
        intl = (meta.preferred_international_prefix or meta.international_prefix) if meta is not None else None
        self.trunk_prefix = trunk if trunk.isdigit() else ""
        self.international_prefix = intl if intl and intl.isdigit() else "00"

    def forms(self, raw: str, e164: str | None, digits: str) -> tuple[str, ...]:
        """Every digit form of one stored number, most canonical first, without duplicates."""
        if not e164:
            e164 = self.parse_e164(raw)
        out: list[str] = []
        if e164:
            international = e164.lstrip("+")
            out.append(international)
            out.append(self.international_prefix + international)
            if self.country_code and international.startswith(self.country_code):
                out.append(self.trunk_prefix + international[len(self.country_code):])
        raw_digits = digits or only_digits(raw)
        if raw_digits and raw_digits not in out:
            out.append(raw_digits)
        return tuple(out)

    def assertion_forms(self, value: str) -> frozenset[str]:
        """What an equality assertion on a number attribute may equal."""
        found = {only_digits(value)}
        e164 = self.parse_e164(value)
        if e164:
            found.add(e164.lstrip("+"))
        found.discard("")
        return frozenset(found)

    def parse_e164(self, raw: str) -> str | None:
        return _parse_e164(raw, self.region)


def _parse_e164(raw: str, region: str) -> str | None:
    """The sync side's own normalisation (sync.phones), so both sides agree on every number."""
    return normalise_number(raw, region).e164
