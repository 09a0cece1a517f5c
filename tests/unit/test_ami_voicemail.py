from __future__ import annotations

from pbxsync.plugin.ami.voicemail import VOICEMAIL_SOURCE, entries_from_voicemail
from pbxsync.plugin.ami.wire import AmiMessage
from pbxsync.plugin.directory import Directory, DirectoryEntry


def vm(mailbox: str, name: str, email: str, context: str = "default") -> AmiMessage:
    return AmiMessage.of(("Event", "VoicemailUserEntry"), ("ActionID", "x"), ("VMContext", context),
                         ("VoiceMailbox", mailbox), ("Fullname", name), ("Email", email))


def test_entries_are_validated_and_deduplicated() -> None:
    entries = entries_from_voicemail([
        vm("101", "Alice Example", "Alice@Example.com"), vm("102", "Bob\r\nEvil", "not an address"),
        vm("10&3", "Bad", "bad@example.com"), vm("101", "Other", "o@example.com", "other"),
        vm("104", "Dan", "")])
    assert entries == [DirectoryEntry("101", ("alice@example.com",), "Alice Example", source=VOICEMAIL_SOURCE),
                       DirectoryEntry("102", (), "Bob Evil", source=VOICEMAIL_SOURCE),
                       DirectoryEntry("104", (), "Dan", source=VOICEMAIL_SOURCE)]


def test_config_users_win_when_merged() -> None:
    config_entry = DirectoryEntry("101", ("alice@corp.example",), "Alice (config)")
    merged = Directory.from_entries([config_entry, *entries_from_voicemail(
        [vm("101", "Alice", "alice@example.com"), vm("105", "Eve", "eve@example.com")])])
    assert merged.by_extension("101") == config_entry
    found = merged.match("EVE@example.com")
    assert found is not None and found.extension == "105" and found.source == VOICEMAIL_SOURCE
