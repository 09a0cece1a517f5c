"""Phone-number normalisation, shared by every source (storing) and every lookup (CLI search, LDAP, caller ID).

Storing and looking up must agree, so there is exactly one function: `normalise_number`. A number that
`phonenumbers` parses as a *possible* number (default region from the config) gets its E.164 form; every number
keeps its digits, for "contains" matching (`*4711*`). Possible, not valid: the validity check costs a third of
the sync's CPU time per contact (benchmarks/bench_ews_sync.py) and would drop numbers from ranges the metadata
does not know yet, which is worse for caller-ID than matching them. Hostile input never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from pbxsync.sync.model import PhoneKind, PhoneNumber

MAX_NUMBER_LENGTH = 64  # longer values are not phone numbers; they are stored raw (truncated) but not parsed


@dataclass(frozen=True)
class NormalisedNumber:
    e164: str | None
    digits: str


@lru_cache(maxsize=65536)
def normalise_number(raw: str, region: str) -> NormalisedNumber:
    text = raw[:MAX_NUMBER_LENGTH]
    digits = "".join(ch for ch in text if ch.isdigit() and ch.isascii())
    e164: str | None = None
    if digits:
        candidate = text.strip()
        if candidate.startswith("00"):  # international dialling prefix as typed in many address books
            candidate = "+" + candidate[2:]
        try:
            parsed = phonenumbers.parse(candidate, region.upper() or None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return NormalisedNumber(e164, digits)


def phone_number(kind: PhoneKind, raw: str, region: str) -> PhoneNumber:
    clean = "".join(ch for ch in raw[:MAX_NUMBER_LENGTH * 4] if ch.isprintable()).strip()
    n = normalise_number(clean, region)
    return PhoneNumber(kind, clean, n.e164, n.digits)


# The same normalisation under the names other modules use (one implementation, so everyone agrees).


def digits_of(text: str) -> str:
    """Every ASCII digit of `text` (within the first MAX_NUMBER_LENGTH characters), for contains-matching."""
    return normalise_number(text, "").digits


def to_e164(raw: str, default_region: str) -> str | None:
    """"+49301234711" for a valid number (national numbers read in `default_region`), else None."""
    return normalise_number(raw, default_region).e164


def normalise_phone(kind: PhoneKind, raw: str, default_region: str) -> PhoneNumber | None:
    """Like `phone_number`, but None for a value without any digit (it is not a phone number)."""
    number = phone_number(kind, raw, default_region)
    return number if number.digits else None
