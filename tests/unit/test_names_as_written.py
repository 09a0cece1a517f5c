"""Names as people write them: kept in the store as written, neutralised where they leave it (caller ID over
AGI, AMI, LDAP, CLI tables, logs), cut only where a field has a limit."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from exchangelib.indexed_properties import EmailAddress, PhoneNumber
from exchangelib.items import Contact as EwsContact

from pbxsync.plugin.agi.callerid import MAX_NAME_LENGTH, contact_name
from pbxsync.plugin.agi.server import quote, sanitize_value
from pbxsync.plugin.ami.wire import sanitize_callerid_name, variable_headers
from pbxsync.plugin.commands.common import print_table
from pbxsync.plugin.ldap.schema import clean as ldap_clean
from pbxsync.sync.engine import log_skipped
from pbxsync.sync.errors import ValidationError
from pbxsync.sync.model import Folder, SkippedItem
from pbxsync.sync.sources.contact_fields import MAX_CONTACT_TEXT, contact_text, display_name
from pbxsync.sync.sources.ews_contacts import ContactsReader
from pbxsync.sync.sources.graph import phone_builder
from pbxsync.sync.sources.graph_mapping import contact_to_model

NAMES = {
    "right-to-left": "أحمد المصري",
    "emoji with joiners": "Lena 🎉 👨\u200d👩\u200d👧",
    "quotes and semicolons": "\"Bobby\" O'Brien; Jr.",
    "dialplan expression": "${SHELL(rm -rf /)} $[1+1]",
    "line break": "Anna\nSchmidt",
    "bidi override": "Eve \u202egnp.exe",
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_names_are_kept_in_the_store_as_written(name: str) -> None:
    assert contact_text(name) == name
    graph = contact_to_model({"id": "g1", "displayName": name}, phone_builder("DE"))
    ews = ContactsReader(None, "DE", 100, 10)._contact(EwsContact(display_name=name), "e1", "")  # type: ignore[arg-type]
    assert graph.display_name == ews.display_name == name


def test_only_what_no_consumer_carries_is_changed_on_the_way_in() -> None:
    assert contact_text("a\r\nb\rc") == "a\nb\nc"  # one line break, as EWS's XML parser would give it
    assert contact_text("nul\x00bell\x07 end\x85") == "nul bell  end"
    assert contact_text("lone \ud800 surrogate") == "lone \ufffd surrogate"  # SQLite could not store it
    assert contact_text(42) == ""


def test_a_very_long_name_is_whole_in_the_store_and_cut_where_fields_have_limits() -> None:
    name = "Prof. Dr. " + "Müller-Lüdenscheidt " * 100
    assert len(name) > 1024 and contact_text(name) == name.strip()
    assert len(contact_text("x" * 10_000_000)) == MAX_CONTACT_TEXT  # the guard against abuse only
    assert len(sanitize_value(name, MAX_NAME_LENGTH)) <= MAX_NAME_LENGTH  # caller ID
    assert len(ldap_clean(name)) == 1024
    assert len(sanitize_callerid_name(name)) <= 40


@pytest.mark.parametrize(("fields", "shown"), [
    ({"displayName": "Shown"}, "Shown"),
    ({"fileAs": "Meier, Karl", "givenName": "Karl", "surname": "Meier"}, "Meier, Karl"),
    ({"givenName": "Karl", "surname": "Meier"}, "Karl Meier"),
    ({"surname": "Meier"}, "Meier"),
    ({"companyName": "ACME GmbH"}, "ACME GmbH"),
    ({"emailAddresses": [{"address": "info@shop.example"}]}, "info@shop.example"),
    ({}, ""),
])
def test_the_display_name_falls_back_like_outlook(fields: dict[str, Any], shown: str) -> None:
    graph = contact_to_model({"id": "g1", **fields}, phone_builder("DE"))
    assert graph.display_name == shown
    ews = EwsContact(display_name=fields.get("displayName"), file_as=fields.get("fileAs"),
                     given_name=fields.get("givenName"), surname=fields.get("surname"),
                     company_name=fields.get("companyName"),
                     email_addresses=[EmailAddress(email=e["address"], label="EmailAddress1")
                                      for e in fields.get("emailAddresses", [])])
    assert ContactsReader(None, "DE", 100, 10)._contact(ews, "e1", "").display_name == shown  # type: ignore[arg-type]
    assert display_name("", "", "", "", "", ("", "x@y")) == "x@y"


def test_every_ews_phone_field_is_kept_with_its_kind() -> None:
    labels = ["BusinessPhone", "BusinessPhone2", "CompanyMainPhone", "MobilePhone", "CarPhone", "RadioPhone",
              "HomePhone", "HomePhone2", "BusinessFax", "HomeFax", "OtherFax", "Pager", "AssistantPhone",
              "Callback", "OtherTelephone", "PrimaryPhone", "Isdn", "Telex", "TtyTddPhone"]
    ews = EwsContact(display_name="All", phone_numbers=[PhoneNumber(label=label, phone_number=f"+49 30 1000{i:02}")
                                                        for i, label in enumerate(labels)])
    phones = ContactsReader(None, "DE", 100, 10)._contact(ews, "e1", "").phones  # type: ignore[arg-type]
    assert [p.kind.value for p in phones] == [
        "business", "business", "business", "mobile", "mobile", "mobile", "home", "home", "fax", "fax", "fax",
        "pager", "other", "other", "other", "other", "other", "other", "other"]
    assert [p.e164 for p in phones] == [f"+4930 1000{i:02}".replace(" ", "") for i in range(len(labels))]


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
def test_names_are_neutralised_where_they_leave_the_store(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Caller ID over AGI: one line, no evaluable ${...}/$[...], quoted for res_agi.
    agi = sanitize_value(contact_name(name, "", "", ""), MAX_NAME_LENGTH)
    assert "\n" not in agi and "${" not in agi and "$[" not in agi and "\u202e" not in agi
    assert quote(name).startswith('"') and "\n" not in quote(name)
    # AMI: a caller-ID name keeps only safe characters; a variable refuses expressions and line breaks.
    assert not set(sanitize_callerid_name(name)) & set("\"';${}[]\n<>\u202e")
    if "${" in name or "\n" in name or "$[" in name:
        with pytest.raises(ValidationError):
            variable_headers({"PBXSYNC_NAME": name})
    # LDAP: a value is a length-prefixed octet string, so it is served as written; only control characters
    # other than line breaks are dropped (tests/unit/test_ldap_columns.py).
    assert ldap_clean(name) == name
    # CLI tables: printable only.
    print_table(("NAME",), [(name,)])
    assert "\u202e" not in capsys.readouterr().out.split("\n", 1)[1]


def test_skip_log_lines_cannot_be_forged_by_folder_names_or_ids(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "pbxsync.sync"):
        log_skipped("alice@example.com", Folder.CONTACTS, (
            SkippedItem("Evil\n2026-01-01 INFO pbxsync: all fine", "id\r\nforged", "not a contact\n(IPM.Note)"),))
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\r" not in line
    assert "'contacts/Evil\\n2026-01-01 INFO pbxsync: all fine'" in line and "not a contact (IPM.Note)" in line
