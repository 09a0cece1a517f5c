"""The PBX directory: case-insensitive matching, X.500 resolution, precedence of config entries."""

from __future__ import annotations

from pathlib import Path

from pbxsync.plugin.directory import Directory, DirectoryEntry, load_directory
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.model import is_internal_address
from pbxsync.sync.store.db import open_store

X500 = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=abc123-alice"


def config() -> Config:
    return Config(users=[
        UserConfig(extension="201", email=["Alice@Example.com", "a.smith@example.com"], name="Alice", room="801"),
        UserConfig(extension="202", email=["bob@example.com"], name="Bob", sync_calendar=False),
    ])


def test_matching_is_case_insensitive_and_knows_aliases() -> None:
    d = Directory.from_config(config())
    alice = d.match("alice@EXAMPLE.com")
    assert alice is not None and alice.extension == "201"
    assert d.match(" A.Smith@example.com ") == alice
    assert d.match("mailto:ALICE@example.com") == alice
    assert d.match("SMTP:bob@example.com") is not None
    assert d.match("carol@example.com") is None
    assert d.match("") is None
    assert d.match("   ") is None
    assert alice.mailbox == "alice@example.com"
    assert alice.room == "801"


def test_internal_addresses_resolve_through_the_cache() -> None:
    d = Directory.from_config(config(), resolved={X500.lower(): "alice@example.com", "/o=x/cn=nobody": None})
    assert is_internal_address(X500)
    alice = d.match(X500)
    assert alice is not None and alice.extension == "201"
    assert d.match(X500.upper()) == alice
    assert d.match("/o=x/cn=nobody") is None
    assert d.smtp("/o=x/cn=nobody") == "/o=x/cn=nobody"  # unresolvable stays visible as it was


def test_earlier_entries_take_precedence() -> None:
    voicemail = [
        DirectoryEntry("201", ("alice@voicemail.example",), "Alice VM", source="voicemail"),
        DirectoryEntry("300", ("alice@example.com", "carol@example.com"), "Carol", source="voicemail"),
    ]
    d = Directory.from_config(config(), extra=voicemail)
    assert [e.extension for e in d.entries] == ["201", "202", "300"]
    assert d.match("alice@voicemail.example") is None  # its extension belongs to the config entry
    alice = d.match("alice@example.com")
    assert alice is not None and alice.extension == "201"
    carol = d.match("carol@example.com")
    assert carol is not None and carol.extension == "300" and carol.source == "voicemail"
    assert len(d.conflicts) == 2
    assert any("extension 201" in c for c in d.conflicts)


def test_calendar_mailboxes_are_the_users_with_calendar_sync() -> None:
    d = Directory.from_config(config())
    assert d.calendar_mailboxes() == frozenset({"alice@example.com"})
    bob = d.by_extension("202")
    assert bob is not None and bob.sync_calendar is False


async def test_load_directory_reads_the_address_cache(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db.sqlite")
    try:
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO address_cache (address, smtp, resolved_at) VALUES (?, ?, ?)",
                               (X500.lower(), "ALICE@example.com", "2026-11-27T09:00:00+00:00"))
        d = await load_directory(store, config())
    finally:
        await store.close()
    alice = d.match(X500)
    assert alice is not None and alice.extension == "201"
