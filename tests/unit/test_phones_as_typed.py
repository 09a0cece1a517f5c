"""Numbers as people type them: kept raw, findable by their digits, matched by what can be dialled."""

from __future__ import annotations

import pytest

from pbxsync.plugin.agi.callerid import Candidate, choose_contact, normalise
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.sync.model import PhoneKind
from pbxsync.sync.phones import normalise_number, normalise_phone, phone_number


@pytest.mark.parametrize(("raw", "e164", "digits"), [
    # an extension is not dialled: left out of both forms, so the number matches its caller
    ("+49 30 1234-0 ext. 55", "+493012340", "493012340"),
    ("+49 30 12340 x123", "+493012340", "493012340"),
    ("030 12340 X 123", "+493012340", "03012340"),
    ("+49 30 1234567 Durchwahl 55", "+49301234567", "49301234567"),
    ("+49 30 1234567 App. 55", "+49301234567", "49301234567"),
    ("+49 30 123456#12", "+4930123456", "4930123456"),
    ("+49 30 1234567;ext=55", "+49301234567", "49301234567"),
    # the trunk (0) in an international number is never dialled
    ("+49 (0)30 1234567", "+49301234567", "49301234567"),
    ("+49 (0) 30 1234567", "+49301234567", "49301234567"),
    ("0049 (0)30 1234567", "+49301234567", "0049301234567"),
    ("(030) 1234567", "+49301234567", "0301234567"),  # a national area code in brackets is dialled
    # vanity letters are the keypad digits
    ("1-800-FLOWERS", "+4918003569377", "18003569377"),
    ("+1 800 FLOWERS", "+18003569377", "18003569377"),
    ("0800 FLOWERS", "+498003569377", "08003569377"),
    # URIs count with their user part only
    ("sip:4711@pbx.example.com", None, "4711"),
    ("sip:100@10.0.0.1", None, "100"),
    ("sips:+4930123456@pbx.example.com;transport=tls", "+4930123456", "4930123456"),
    ("tel:+49-30-1234567", "+49301234567", "49301234567"),
    # an internal short number is an extension, not a national number
    ("4711", None, "4711"),
    ("12", None, "12"),
    # spaces and dashes of every kind, digits of other scripts
    ("+49\u00a030\u202f1234\u20115678", "+493012345678", "493012345678"),
    ("+49 30 1234\u20104567", "+493012344567", "493012344567"),
    ("+49 30 1234\u20124567", "+493012344567", "493012344567"),
    ("+49 30 1234\u20134567", "+493012344567", "493012344567"),
    ("+49 30 1234\u20144567", "+493012344567", "493012344567"),
    ("+49 30 1234\u22124567", "+493012344567", "493012344567"),
    ("\uff10\uff13\uff10 1234567", "+49301234567", "0301234567"),  # full-width
    ("\u0660\u0663\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "+49301234567", "0301234567"),  # Arabic-Indic
    # notes around a number
    ("+49 30 1234567 (Büro)", "+49301234567", "49301234567"),
    ("Zentrale 030 1234567", "+49301234567", "0301234567"),
    # and the ordinary ones stay as they were
    ("+49 30 1234-4711", "+493012344711", "493012344711"),
    ("0170 1234567", "+491701234567", "01701234567"),
])
def test_numbers_as_typed(raw: str, e164: str | None, digits: str) -> None:
    n = normalise_number(raw, "DE")
    assert (n.e164, n.digits) == (e164, digits)


def test_the_raw_text_is_kept_with_plain_spaces() -> None:
    number = phone_number(PhoneKind.BUSINESS, "+49\u00a030\u200b 1234\u20115678 ext.\u00a055", "DE")
    assert number.raw == "+49 30 1234\u20115678 ext. 55"  # NBSP a space, zero-width space gone, rest as typed
    assert (number.e164, number.digits) == ("+493012345678", "493012345678")


def test_a_value_without_digits_is_no_number_unless_it_is_a_uri() -> None:
    assert normalise_phone(PhoneKind.OTHER, "n/a", "DE") is None
    uri = normalise_phone(PhoneKind.OTHER, "sip:alice@pbx.example.com", "DE")
    assert uri is not None and (uri.raw, uri.e164, uri.digits) == ("sip:alice@pbx.example.com", None, "")


def test_names_are_not_read_as_vanity_numbers() -> None:
    assert normalise_number("Anna Müller", "DE").digits == ""
    assert normalise_number("Flowers", "DE").digits == ""


@pytest.mark.parametrize(("stored", "caller"), [
    ("+49 30 1234-0 ext. 55", "+493012340"),
    ("+49 30 1234-0 ext. 55", "0301234 0"),
    ("+49 (0)30 1234567", "0301234567"),
    ("1-800-FLOWERS", "018003569377"),
    ("sip:4711@10.0.0.1", "4711"),
    ("+49\u00a030\u202f1234\u20115678", "+49 30 12345678"),
])
def test_caller_id_matches_what_can_be_dialled(stored: str, caller: str) -> None:
    """The caller-ID query (plugin.agi.callerid) matches on E.164 or on all digits."""
    kept = normalise_number(stored, "DE")
    e164, digits = normalise(caller, "DE")
    assert (e164 is not None and e164 == kept.e164) or digits == kept.digits


def test_an_extension_does_not_match_the_main_number_of_another_contact() -> None:
    # "+49 30 1234-0 ext. 55" and "+49 30 1234-0" are both the switchboard: the caller gets the oldest one,
    # and a direct-dial "+49 30 1234-55" is a different number.
    assert normalise_number("+49 30 1234-55", "DE").e164 != normalise_number("+49 30 1234-0 ext. 55", "DE").e164
    best = choose_contact([Candidate(2, "a@x", "Switchboard", True), Candidate(1, "a@x", "Anna (ext. 55)", True)],
                          "a@x", ())
    assert best is not None and best.name == "Anna (ext. 55)"


def test_ldap_number_forms_find_odd_numbers_by_every_form() -> None:
    forms = NumberForms("DE")
    for raw, wanted in (("+49 (0)30 1234567", "0301234567"), ("1-800-FLOWERS", "18003569377"),
                        ("+49 30 1234-0 ext. 55", "03012340"), ("sip:4711@pbx", "4711")):
        n = normalise_number(raw, "DE")
        assert wanted in forms.forms(raw, n.e164, n.digits), raw
