"""Issue 12 "must show" (contacts): a mailbox as real ones are — a contact group, contacts sub-folders and
Exchange's hidden ones, a message and a document among the contacts, an item exchangelib cannot parse and
one without an id, every phone field, numbers and names as people type them — syncs through the CLI
against the EWS simulator with exit 0 and every regular contact listed; the skipped items are reported.

Data: tests/data/messy-mailboxes.json (also served over Graph by test_backend_equivalence.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pbxsync.plugin.cli import main
from pbxsync.plugin.ldap.build import build_from_store
from pbxsync.plugin.ldap.filters import Equality, Substrings
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.query import compile_filter
from pbxsync.plugin.ldap.schema import attribute_index
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import ContactRecord, Organisation, Phone
from pbxsync.sync.simulator.records import PHONE_KINDS

DATA = Path(__file__).parent.parent / "data" / "messy-mailboxes.json"
ALICE, BOB = "alice@example.com", "bob@example.com"
LONG_NAME = ("Prof. Dr. " + "Müller-Lüdenscheidt " * 60).strip()
REGULAR = {  # every regular contact of the data file: name -> folder
    "Zoë Müller": "", "أحمد المصري": "", "Lena 🎉 👨\u200d👩\u200d👧": "",
    "\"Bobby\" O'Brien; ${SHELL(rm -rf /)} $[1+1]": "", "Anna\nSchmidt": "", "Meier, Karl": "",
    "Kurt Nur-Vorname": "", "ACME GmbH": "", "info@shop.example": "", LONG_NAME: "",
    "Lieferant Eins": "Suppliers", "Berliner Bär": "Suppliers/Berlin",
}
NOT_CONTACTS = {"Team Vertrieb", "Lieferanten-Verteiler", "Re: Angebot", "Preisliste.docx", "Broken Birthday",
                "No Id", "Cached Stranger", "Directory Person"}
SKIP_REASONS = {"not a contact (IPM.Note)", "not a contact (IPM.Document.Word.Document.12)",
                "exchangelib could not read it (ValueError)", "a contact without an item id"}


@pytest.fixture
def org() -> Organisation:
    return Organisation.load_file(DATA, now=datetime(2026, 3, 20, 12, tzinfo=UTC))


@pytest.fixture
def sim(org: Organisation) -> Iterator[EwsSimulator]:
    with EwsSimulator(org) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, sim: EwsSimulator) -> Path:
    path = tmp_path / "pbxsync.toml"
    path.write_text(f"""
database = "pbxsync.db"
[exchange]
server = "{sim.ews_url}"
auth = "basic"
username = "svc-pbx@example.com"
password = "svc-pw"
impersonation = true
[[users]]
extension = "101"
email = "{ALICE}"
name = "Alice"
sync_calendar = false
[[users]]
extension = "102"
email = "{BOB}"
name = "Bob"
sync_calendar = false
""")
    return path


def cli(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def contacts(config: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code, out, _ = cli(config, capsys, "contacts", "--json")
    assert code == 0
    listed: list[dict[str, Any]] = json.loads(out)
    return listed


def users(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    code, out, _ = cli(config, capsys, "users", "--json")
    assert code == 0
    return {u["extension"]: u for u in json.loads(out)}


def test_must_show_a_messy_mailbox_syncs_with_exit_0_and_every_regular_contact_listed(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(config, capsys, "sync", "--local")
    assert code == 0, (out, err)
    assert "2 of 2 users synced" in out and "(4 skipped)" in out
    assert "warning: 4 contacts item(s) of 101 (alice@example.com) could not be read" in err

    listed = contacts(config, capsys)
    alice = {c["display_name"]: c for c in listed if c["mailbox"] == ALICE}
    assert {name: c["folder"] for name, c in alice.items()} == REGULAR  # every regular one, nothing else
    assert not NOT_CONTACTS & {c["display_name"] for c in listed}
    assert [c["display_name"] for c in listed if c["mailbox"] == BOB] == ["Bobs Friend"]
    zoe = alice["Zoë Müller"]
    assert [(p["kind"], p["raw"], p["e164"]) for p in zoe["phones"]] == [
        ("business", "+49 30 1234-0 ext. 55", "+493012340"),
        ("mobile", "+49 170\u2011123\u20134567", "+491701234567")]

    shown = users(config, capsys)
    folder = shown["101"]["contacts"]
    assert folder["last_error"] is None and folder["skipped"] == 4
    assert {s["reason"] for s in folder["skipped_latest"]} == SKIP_REASONS
    assert shown["102"]["contacts"]["skipped"] == 0 and shown["101"]["contact_count"] == len(REGULAR)

    # The text listing says the same, with one line per skipped item.
    code, out, _ = cli(config, capsys, "users")
    assert code == 0 and "4 skipped" in out and "not a contact (IPM.Note)" in out

    # The next pass is incremental: nothing new, the items stay reported, still exit 0 without a warning.
    code, out, err = cli(config, capsys, "sync", "--local")
    assert code == 0 and "skipped" not in out and "warning" not in err
    assert users(config, capsys)["101"]["contacts"]["skipped"] == 4


def test_contacts_search_finds_odd_numbers_by_what_is_dialled(config: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config, capsys, "sync", "--local")[0] == 0
    for query, name in (("+49 30 12340", "Zoë Müller"), ("0301234 0", "Zoë Müller"),
                        ("030 7654321", "أحمد المصري"), ("18003569377", "Lena 🎉 👨\u200d👩\u200d👧"),
                        ("4711", "Anna\nSchmidt"), ("+49 170 999 8887", "Berliner Bär")):
        code, out, _ = cli(config, capsys, "contacts", "search", query, "--json")
        assert code == 0 and name in {c["display_name"] for c in json.loads(out)}, query


def test_sub_folders_follow_renames_moves_and_deletions(org: Organisation, config: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(config, capsys, "sync", "--local")[0] == 0
    folders = {f.name: f for f in org.contact_folders(ALICE)}
    org.update_contact_folder(ALICE, folders["Suppliers"].folder_id, name="Lieferanten")
    assert cli(config, capsys, "sync", "--local")[0] == 0
    shown = {c["display_name"]: c["folder"] for c in contacts(config, capsys) if c["mailbox"] == ALICE}
    assert (shown["Lieferant Eins"], shown["Berliner Bär"]) == ("Lieferanten", "Lieferanten/Berlin")

    # Outlook's "Delete Folder" moves it to Deleted Items: out of the Contacts tree, so its contacts go.
    org.update_contact_folder(ALICE, folders["Berlin"].folder_id, parent_id="", folder_class="IPF.Note")
    assert cli(config, capsys, "sync", "--local")[0] == 0
    assert "Berliner Bär" not in {c["display_name"] for c in contacts(config, capsys)}

    org.delete_contact_folder(ALICE, folders["Suppliers"].folder_id)
    org.add_contact_folder(ALICE, "Neu")
    assert cli(config, capsys, "sync", "--local")[0] == 0
    names = {c["display_name"] for c in contacts(config, capsys)}
    assert "Lieferant Eins" not in names and "Zoë Müller" in names


def test_every_ews_phone_field_is_synced_and_served_over_ldap_under_its_attribute(
        org: Organisation, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    numbers = {kind: f"+49 30 5000{i:02}" for i, kind in enumerate(PHONE_KINDS)}
    org.add_contact(BOB, ContactRecord("", "", "Every Field", phones=tuple(Phone(k, n) for k, n in numbers.items())))
    assert cli(config, capsys, "sync", "--local")[0] == 0
    every = next(c for c in contacts(config, capsys) if c["display_name"] == "Every Field")
    assert len(every["phones"]) == len(PHONE_KINDS) == 19
    kinds = {p["raw"]: p["kind"] for p in every["phones"]}
    assert kinds[numbers["pager"]] == "pager" and kinds[numbers["home_fax"]] == "fax"
    assert kinds[numbers["car"]] == "mobile" and kinds[numbers["isdn"]] == "other"

    conn = sqlite3.connect(tmp_path / "pbxsync.db")
    try:
        index = build_from_store(conn, "ou=pbxsync,dc=example,dc=com", NumberForms("DE"))
    finally:
        conn.close()
    forms = NumberForms("DE")
    (entry,) = [e for e in index.entries if e.original(attribute_index("cn") or 0) == ("Every Field",)]
    served = {name: set(entry.original(attribute_index(name) or 0))
              for name in ("telephoneNumber", "mobile", "homePhone", "facsimileTelephoneNumber", "pager")}
    assert served["pager"] == {numbers["pager"]}
    assert served["facsimileTelephoneNumber"] == {numbers[k] for k in ("fax", "home_fax", "other_fax")}
    assert served["mobile"] == {numbers[k] for k in ("mobile", "car", "radio")}
    assert served["homePhone"] == {numbers[k] for k in ("home", "home2")}
    assert len(served["telephoneNumber"]) == 10  # business, business2, company and the other dialable ones
    assert compile_filter(Equality("pager", "030 500013"), forms)(entry) is True
    assert compile_filter(Substrings("pagerTelephoneNumber", None, ("500013",), None), forms)(entry) is True
    # A group is no phonebook entry: nothing of it reaches LDAP.
    assert not {e.original(attribute_index("cn") or 0)[0] for e in index.entries} & NOT_CONTACTS
