"""One rule for an internal (X.500 / legacyExchangeDN) address: what the sync engine resolves is what the
directory matches through the address cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin import directory as directory_module
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.model import Attendee, AttendeeKind, Occurrence, ResponseType, is_internal_address
from pbxsync.sync.plan import internal_addresses, with_resolved_addresses

X500 = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=abc123-alice"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("address", [
    X500, X500.upper(), f"  {X500}  ", "x500:/o=Contoso/ou=First/cn=Recipients/cn=bob", "EX:/o=Contoso/cn=carol",
    "/o=Contoso/cn=odd@name",  # a DN may hold an "@" and is still no SMTP address
    "alice",  # no "@": whatever it is, only Exchange can say which mailbox it means
])
def test_internal_forms(address: str) -> None:
    assert is_internal_address(address)


@pytest.mark.parametrize("address", [
    "alice@example.com", "Alice@Example.COM", " alice@example.com ", "smtp:alice@example.com",
    "mailto:alice@example.com", "", "   ",
])
def test_smtp_and_blank_are_not_internal(address: str) -> None:
    assert not is_internal_address(address)


def meeting(*emails: str) -> Occurrence:
    return Occurrence(
        item_id="i1", change_key="c1", uid="u1", start=T0, end=T0 + timedelta(hours=1), timezone="UTC",
        organizer_email=emails[0], attendees=tuple(
            Attendee(e, "", AttendeeKind.REQUIRED, ResponseType.UNKNOWN) for e in emails[1:]))


def test_the_engine_resolves_exactly_the_internal_ones() -> None:
    occ = meeting(X500, "Bob@Example.com", "", "x500:/o=c/cn=carol")
    assert internal_addresses((occ,)) == {X500.lower(), "x500:/o=c/cn=carol"}
    resolved = with_resolved_addresses(occ, {X500.lower(): "alice@example.com"})
    assert resolved.organizer_email == "alice@example.com"
    assert [a.email for a in resolved.attendees] == ["bob@example.com", "", "x500:/o=c/cn=carol"]


def test_the_directory_matches_what_the_engine_resolved() -> None:
    cfg = Config(users=[UserConfig(extension="201", email=["alice@example.com"])])
    wanted = internal_addresses((meeting(X500),))
    directory = Directory.from_config(cfg, resolved=dict.fromkeys(wanted, "alice@example.com"))
    alice = directory.match(X500)
    assert alice is not None and alice.extension == "201"


def test_the_plugin_side_has_no_rule_of_its_own() -> None:
    assert not hasattr(directory_module, "is_internal_address")


@given(st.text(max_size=40))
def test_every_address_is_either_internal_smtp_like_or_blank(address: str) -> None:
    text = address.strip()
    if not text:
        assert not is_internal_address(address)
    elif "@" not in text:
        assert is_internal_address(address)
