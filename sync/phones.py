"""Phone-number normalisation, shared by every source (storing) and every lookup (CLI search, LDAP, caller ID).

Storing and looking up must agree, so there is exactly one function: `normalise_number`. A number that
`phonenumbers` parses as a *possible* number (default region from the config) gets its E.164 form; every number
keeps its dialable digits, for "contains" matching (`*4711*`). Possible, not valid: the validity check costs a third of
the sync's CPU time per contact (benchmarks/bench_ews_sync.py) and would drop numbers from ranges the metadata
does not know yet, which is worse for caller-ID than matching them. Hostile input never raises.

Numbers as people type them (the raw text is always kept as typed; these rules shape `e164` and `digits`):
- an extension (`+49 30 1234-0 ext. 55`, `x123`, `#55`, `Durchwahl 55`, `;ext=55`) is not dialled: it is left
  out of both, so the number still matches a caller presenting `+49301234 0`;
- `(0)` inside an international number (`+49 (0)30 1234`) is the national trunk prefix nobody dials;
- vanity letters after the first digits (`1-800-FLOWERS`) are the keypad digits they stand for;
- a `sip:`/`sips:`/`tel:` URI counts with its user part only (`sip:4711@10.0.0.1` is 4711, not 4711100001);
- an internal short number (fewer than 7 digits, not starting with `+` or `0`) has no E.164 form: `4711` is
  an extension, not the German number +49 4711;
- non-breaking and other Unicode spaces, dashes of any kind (‐ ‑ ‒ – — −) and non-ASCII digits are read as
  their plain forms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from pbxsync.sync.model import PhoneKind, PhoneNumber

MAX_NUMBER_LENGTH = 64  # longer values are not phone numbers; they are stored raw (truncated) but not parsed
SHORT_NUMBER_DIGITS = 7  # below this, a number without `+`/`0` is an internal extension

_PLAIN = re.compile(r"[0-9+()./ -]*")  # the common case: nothing below needs doing but the digits
_URI = re.compile(r"\s*(?:sips?|tel):([^@;]*)", re.IGNORECASE)
_EXTENSION = re.compile(
    r"(?:\s*(?:ext|extn|extension|x|#|dw|durchwahl|app|apparat|nst|nebenstelle|poste|int)\s*[.:]?\s*|;ext=)"
    r"(\d{1,8})\s*$", re.IGNORECASE)
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")
_VANITY = re.compile(r"\+?[0-9 ()./-]*[0-9][0-9 ()./-]*[A-Za-z][A-Za-z0-9 ./-]*")
_KEYPAD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "22233344455566677778889999")
_NOT_DIGIT = re.compile(r"[^0-9]+")
_TRAILING_TEXT = re.compile(r"[^0-9]+$")  # "030 1234567 (Büro)": a note after the number


@dataclass(frozen=True)
class NormalisedNumber:
    e164: str | None
    digits: str


def _plain_character(ch: str) -> str:
    if ch.isspace():
        return " "
    if ch == "\u2212" or unicodedata.category(ch) == "Pd":  # minus sign, and every dash and hyphen
        return "-"
    if ch.isdecimal() and not ch.isascii():
        return str(unicodedata.decimal(ch))
    return ch


def dialable_part(text: str) -> str:
    """The part of a typed number that is dialled (see the module docstring), spaces and dashes kept."""
    if not (text.isascii() and _PLAIN.fullmatch(text)):
        text = "".join(_plain_character(ch) for ch in unicodedata.normalize("NFKC", text))
        uri = _URI.match(text)
        if uri:
            text = uri.group(1)
        text = _EXTENSION.sub("", text)
        if sum(ch.isalpha() for ch in text) >= 3 and _VANITY.fullmatch(text.strip()):
            text = text.upper().translate(_KEYPAD)
        text = _TRAILING_TEXT.sub("", text)
    text = text.strip()
    if text.startswith(("+", "00")) and "(" in text:
        text = _TRUNK_ZERO.sub(" ", text)
    return text


@lru_cache(maxsize=65536)
def normalise_number(raw: str, region: str) -> NormalisedNumber:
    text = dialable_part(raw[:MAX_NUMBER_LENGTH])
    digits = _NOT_DIGIT.sub("", text)
    e164: str | None = None
    if digits and (text.startswith(("+", "0")) or len(digits) >= SHORT_NUMBER_DIGITS):
        candidate = text
        if candidate.startswith("00"):  # international dialling prefix as typed in many address books
            candidate = "+" + candidate[2:]
        try:
            parsed = phonenumbers.parse(candidate, region.upper() or None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_possible_number(parsed):
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return NormalisedNumber(e164, digits)


def clean_raw(raw: str) -> str:
    """A number as typed, bounded, with every kind of space as a plain space and other invisibles gone."""
    return "".join(" " if ch.isspace() else ch for ch in raw[:MAX_NUMBER_LENGTH * 4]
                   if ch.isprintable() or ch.isspace()).strip()


def phone_number(kind: PhoneKind, raw: str, region: str) -> PhoneNumber:
    clean = clean_raw(raw)
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
    """Like `phone_number`, but None for a value that is no phone number: no digit in it and not a
    `sip:`/`tel:` URI (a URI without digits, `sip:alice@pbx.example.com`, can still be dialled)."""
    number = phone_number(kind, raw, default_region)
    return number if number.digits or _URI.match(number.raw) else None


def search_forms(text: str, region: str) -> tuple[str, ...]:
    """The digit strings a typed (part of a) number is looked for in stored numbers' E.164 forms, so
    `+49 30 12`, `0049 30 12` and `030 12` (national, read in `region`) all find +493012345678.
    The query's own digits always come first; none when it has fewer than three digits."""
    typed = dialable_part(text[:MAX_NUMBER_LENGTH])
    digits = _NOT_DIGIT.sub("", typed)
    if len(digits) < 3:
        return ()
    forms = [digits]
    if digits.startswith("00"):
        forms.append(digits[2:])
    elif digits.startswith("0") and not typed.startswith("+"):
        country = phonenumbers.country_code_for_region(region.upper()) if region else 0
        if country:
            forms.append(f"{country}{digits[1:]}")
    return tuple(f for f in dict.fromkeys(forms) if len(f) >= 3)
