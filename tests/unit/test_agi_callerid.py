"""Caller-ID lookup: number forms, preference of the called user's contacts, extensions, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.agi.callerid import CallerIdLookup, Candidate, called_extension, choose_contact
from pbxsync.sync.config import AgiConfig, Config, SyncConfig, UserConfig
from pbxsync.sync.store.db import Store, open_store
from tests.support.agi import add_contact


def make_config(shared: list[str] | None = None) -> Config:
    return Config(
        sync=SyncConfig(default_region="DE"),
        agi=AgiConfig(callerid_shared_mailboxes=shared or []),
        users=[UserConfig(extension="101", email=["alice@example.com"], name="Alice Admin"),
               UserConfig(extension="102", email=["bob@example.com"], name="Bob Builder")],
    )


@pytest.mark.parametrize("arriving", ["03012344711", "+493012344711", "00493012344711", "030 1234 4711",
                                      "+49 (30) 1234-4711", "493012344711"])
async def test_number_in_another_format_finds_the_contact(store: Store, arriving: str) -> None:
    await add_contact(store, "alice@example.com", "Erika Mustermann", "+49 30 1234-4711")
    result = await CallerIdLookup(store, make_config()).lookup(arriving, "101")
    assert (result.name, result.source) == ("Erika Mustermann", "contact")


async def test_unknown_number_and_anonymous_callers_get_nothing(store: Store) -> None:
    await add_contact(store, "alice@example.com", "Erika Mustermann", "+49 30 1234-4711")
    lookup = CallerIdLookup(store, make_config())
    for caller in ("03099999999", "", "anonymous", "Unknown", "abc", "\x00\r\n", "9" * 5000):
        result = await lookup.lookup(caller, "101")
        assert (result.name, result.source) == (None, "none")


async def test_called_users_own_contact_wins_over_shared(store: Store) -> None:
    await add_contact(store, "bob@example.com", "Shared Name", "+4930123456")
    await add_contact(store, "alice@example.com", "Alice's Name", "030 123456")
    lookup = CallerIdLookup(store, make_config())
    assert (await lookup.lookup("030123456", "101")).name == "Alice's Name"
    assert (await lookup.lookup("030123456", "102")).name == "Shared Name"
    assert (await lookup.lookup("030123456", "")).name == "Shared Name"  # lowest id among shared


async def test_shared_mailboxes_limit_other_users_contacts(store: Store) -> None:
    await add_contact(store, "bob@example.com", "Bob's Private", "+4930123456")
    await add_contact(store, "phonebook@example.com", "Company Book", "+4930999999")
    lookup = CallerIdLookup(store, make_config(shared=["Phonebook@Example.com"]))
    assert (await lookup.lookup("030123456", "101")).source == "none"
    assert (await lookup.lookup("030123456", "102")).name == "Bob's Private"  # bob's own
    assert (await lookup.lookup("030999999", "101")).name == "Company Book"


async def test_extension_of_a_pbx_user_names_the_user(store: Store) -> None:
    await add_contact(store, "alice@example.com", "Not This", "102")
    result = await CallerIdLookup(store, make_config()).lookup("102", "101")
    assert (result.name, result.source) == ("Bob Builder", "extension")
    from_phone = await CallerIdLookup(store, make_config()).lookup("102", "101", "PJSIP/102-0000000a")
    assert (from_phone.name, from_phone.source) == ("Bob Builder", "extension")


async def test_a_trunk_presenting_an_internal_extension_does_not_get_the_colleagues_name(store: Store) -> None:
    await add_contact(store, "alice@example.com", "Contact With That Number", "102")
    result = await CallerIdLookup(store, make_config()).lookup("102", "101", "PJSIP/mytrunk-0000000b")
    assert (result.name, result.source) == ("Contact With That Number", "contact")


async def test_short_unparseable_numbers_match_on_digits(store: Store) -> None:
    await add_contact(store, "alice@example.com", "Pizza", "4711")
    assert (await CallerIdLookup(store, make_config()).lookup("4711", "101")).name == "Pizza"


async def test_directory_provider_is_consulted_each_time(store: Store) -> None:
    from pbxsync.plugin.directory import Directory, DirectoryEntry

    entries = [DirectoryEntry("200", ("x@example.com",), "First")]
    lookup = CallerIdLookup(store, make_config(), directory=lambda: Directory.from_entries(entries))
    assert (await lookup.lookup("200")).name == "First"
    entries[0] = DirectoryEntry("200", ("x@example.com",), "Second")
    assert (await lookup.lookup("200")).name == "Second"


def test_choose_contact_prefers_own_then_exact_then_oldest() -> None:
    own_digits = Candidate(5, "a@x", "Own digits", exact=False)
    shared_exact = Candidate(1, "b@x", "Shared exact", exact=True)
    shared_digits = Candidate(2, "b@x", "Shared digits", exact=False)
    shared_exact_late = Candidate(9, "c@x", "Shared exact late", exact=True)
    nameless = Candidate(0, "a@x", "", exact=True)
    everything = [shared_digits, shared_exact_late, nameless, shared_exact, own_digits]
    assert choose_contact(everything, "a@x", ()) == own_digits
    assert choose_contact(everything, "z@x", ()) == shared_exact
    assert choose_contact(everything, "z@x", {"c@x"}) == shared_exact_late
    assert choose_contact([nameless], "a@x", ()) is None


def test_called_extension_prefers_the_argument() -> None:
    env = {"extension": "s", "dnid": "0301234"}
    empty: dict[str, str] = {}
    assert called_extension(env.get, ("101",)) == "101"
    assert called_extension(env.get, ()) == "0301234"
    assert called_extension(empty.get, ()) == ""


@given(st.text(max_size=300))
async def test_hostile_caller_ids_never_raise(caller: str) -> None:
    store = await open_store(":memory:")
    try:
        result = await CallerIdLookup(store, make_config()).lookup(caller, caller)
        assert result.source in ("none", "extension")
    finally:
        await store.close()
