"""Phone numbers as LDAP matches them: every form a user might type, as digit strings.

The store keeps `e164` (when parseable with `[sync] default_region`) and `digits` for every number. A
phone searching `030 1234 4711`, `+49 30 12344711`, `0049301234...` or `*4711*` must find the same
contact, so each stored number is indexed under its international digits (`493012344711`), the same
with the region's international call prefix (`00493012344711`), the national form with the trunk
prefix (`03012344711`, only for numbers of the default region) and the raw digits. Assertions are
reduced to digits; an equality assertion is additionally parsed with `phonenumbers` the same way the
sync side parses stored numbers (E.164 when parseable, else digits).

The index stores only what the forms are derived from (memory: a third of the digits): `+` and the
international digits, plus the raw digits when they are none of the derived forms. `expand` gives the
forms back for matching; `stored_keys` and `overlap_prefixes` turn an assertion into lookups of the
stored values (see plugin.ldap.query).
"""

from __future__ import annotations

import re

import phonenumbers

from pbxsync.sync.phones import normalise_number

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
        return self.expand(self.stored(raw, e164, digits))

    def derived(self, international: str) -> list[str]:
        """The forms of an international number (digits after the `+`)."""
        out = [international, self.international_prefix + international]
        if self.country_code and international.startswith(self.country_code):
            out.append(self.trunk_prefix + international[len(self.country_code):])
        return out

    def stored(self, raw: str, e164: str | None, digits: str) -> tuple[str, ...]:
        """What the index keeps of one number: `+<international>` when known, and the raw digits if
        they are not one of the forms derived from it."""
        if not e164:
            e164 = self.parse_e164(raw)
        raw_digits = digits or only_digits(raw)
        if not e164:
            return (raw_digits,) if raw_digits else ()
        international = e164.lstrip("+")
        if not raw_digits or raw_digits in self.derived(international):
            return ("+" + international,)
        return ("+" + international, raw_digits)

    def expand(self, values: tuple[str, ...]) -> tuple[str, ...]:
        """The forms of stored values (see `stored`), in order, without duplicates."""
        out: list[str] = []
        for value in values:
            for form in self.derived(value[1:]) if value.startswith("+") else (value,):
                if form not in out:
                    out.append(form)
        return tuple(out)

    def stored_keys(self, form: str) -> set[str]:
        """Every stored value one of whose forms is exactly `form`."""
        keys = {form, "+" + form}
        idp, trunk, cc = self.international_prefix, self.trunk_prefix, self.country_code
        if form.startswith(idp) and len(form) > len(idp):
            keys.add("+" + form[len(idp):])
        if cc and form.startswith(trunk):
            keys.add("+" + cc + form[len(trunk):])
        return keys

    def overlap_prefixes(self, fragment: str) -> set[str]:
        """Stored-value prefixes of the numbers where `fragment` occurs in a derived form starting inside
        its international or trunk prefix (`0049...`, `030...`): those occurrences are not in the stored
        digits, every other one is."""
        prefixes: set[str] = set()
        leads = [(self.international_prefix, "")]
        if self.country_code and self.trunk_prefix:
            leads.append((self.trunk_prefix, self.country_code))
        for boundary, lead in leads:
            for p in range(len(boundary)):
                tail = boundary[p:]
                if fragment.startswith(tail):
                    prefixes.add("+" + lead + fragment[len(tail):])
                elif tail.startswith(fragment):
                    prefixes.add("+" + lead)
        return prefixes

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
