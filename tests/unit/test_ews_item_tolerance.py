"""exchangelib defects pbxsync works around for contacts (sync/sources/ews_sync.py), and the EWS contacts
folder rules (sync/sources/ews_contacts.py). If a test of a defect fails, exchangelib fixed it: the
workaround can go."""

from __future__ import annotations

from typing import Any

import pytest
from exchangelib.items import Contact as EwsContact
from exchangelib.services import SyncFolderItems
from lxml import etree

from pbxsync.sync.sources.ews_contacts import DEFAULT, FoundFolder, dump_state, load_state, phonebook_folders
from pbxsync.sync.sources.ews_sync import TolerantSyncFolderItems, Unreadable

T = "http://schemas.microsoft.com/exchange/services/2006/types"


def change(inner: str, kind: str = "Create") -> Any:
    return etree.fromstring(f'<t:{kind} xmlns:t="{T}">{inner}</t:{kind}>')


UNPARSEABLE = {
    "an element exchangelib has no class for": '<t:Persona><t:ItemId Id="p1" ChangeKey="k"/></t:Persona>',
    "a 25-character Birthday that is not ISO 8601":
        '<t:Contact><t:ItemId Id="b1" ChangeKey="k"/><t:Birthday>not-a-date-but-25-chars!!</t:Birthday></t:Contact>',
    "a Body of an unknown BodyType":
        '<t:Contact><t:ItemId Id="y1" ChangeKey="k"/><t:Body BodyType="Rtf">x</t:Body></t:Contact>',
}


def service() -> Any:
    svc = TolerantSyncFolderItems.__new__(TolerantSyncFolderItems)  # parsing needs no account
    svc.account = None
    return svc


@pytest.mark.parametrize("xml", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_exchangelib_raises_out_of_the_page_for_one_unparseable_item(xml: str) -> None:
    plain = SyncFolderItems.__new__(SyncFolderItems)
    plain.account = None
    with pytest.raises((ValueError, KeyError)):
        plain._elem_to_obj(change(xml))


@pytest.mark.parametrize("xml", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_the_tolerant_service_turns_it_into_an_unreadable_item_with_its_id(xml: str) -> None:
    kind, item = service()._elem_to_obj(change(xml))
    assert kind == SyncFolderItems.CREATE and isinstance(item, Unreadable)
    assert item.item_id in ("p1", "b1", "y1") and item.reason.startswith("exchangelib could not read it (")


def test_the_tolerant_service_still_parses_good_items_and_deletes() -> None:
    kind, item = service()._elem_to_obj(change('<t:Contact><t:ItemId Id="c1" ChangeKey="k"/>'
                                               "<t:DisplayName>Zoë</t:DisplayName></t:Contact>"))
    assert kind == SyncFolderItems.CREATE and isinstance(item, EwsContact) and item.display_name == "Zoë"
    kind, gone = service()._elem_to_obj(change('<t:ItemId Id="c2" ChangeKey="k"/>', "Delete"))
    assert kind == SyncFolderItems.DELETE and gone.id == "c2"


def folder(fid: str, parent: str, name: str, cls: str = "IPF.Contact") -> FoundFolder:
    return FoundFolder(fid, parent, name, cls)


def test_phonebook_folders_are_the_users_contact_folders_only() -> None:
    found = [
        folder("s", "root", "Suppliers"), folder("b", "s", "Berlin"), folder("m", "s", "München"),
        folder("rc", "root", "Recipient Cache", "IPF.Contact.RecipientCache"),
        folder("gal", "root", "GAL Contacts", "IPF.Contact.GalContacts"),
        folder("org", "root", "Organizational Contacts", "IPF.Contact.OrganizationalContacts"),
        folder("ext", "root", "ExternalContacts"),
        folder("under", "rc", "Below the cache"),  # below a hidden folder: hidden as well
        folder("notes", "root", "Notes", "IPF.StickyNote"),
        folder("loop", "loop", "Points at itself"),
        folder("odd", "root", "  Two\nlines  "),
    ]
    assert phonebook_folders("root", found) == [
        ("s", "Suppliers"), ("odd", "Two lines"), ("b", "Suppliers/Berlin"), ("m", "Suppliers/München")]


def test_an_earlier_plain_state_is_the_contacts_folders_own() -> None:
    assert load_state("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt")[DEFAULT].sync_state == "H4sIAAAAAAAEAO29B2AcSZYlJi9tynt"
    for foreign in ('{"v": 1, "kind": "graph-contacts", "folders": {}}', "{", '{"v": 1, "kind": "ews-contacts"}'):
        assert load_state(foreign) == {}
    state = load_state(dump_state({DEFAULT: load_state("abc")[DEFAULT]}))
    assert state[DEFAULT].sync_state == "abc" and state[DEFAULT].item_ids == set()
