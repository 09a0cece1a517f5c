"""A second directory source: Asterisk's voicemail users (AMI VoicemailUsersList: mailbox, name, e-mail).

Merge them *after* the config's [[users]] so the config wins on conflicts:
    entries = await fetch_voicemail_entries(ami)
    directory = await load_directory(store, config, extra=entries)   # plugin/directory.py
Voicemail users never sync contacts or calendars themselves; they are matched as invitees only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.ami.wire import AmiMessage
from pbxsync.plugin.directory import DirectoryEntry, normalize_address

log = logging.getLogger("pbxsync.ami.voicemail")
VOICEMAIL_SOURCE = "voicemail"
_MAILBOX = re.compile(r"^[0-9A-Za-z*#+]{1,32}$")
_EMAIL = re.compile(r"^[^@\s;,<>\"'|]{1,200}@[^@\s;,<>\"'|]{1,200}$")


def entries_from_voicemail(items: Sequence[AmiMessage]) -> list[DirectoryEntry]:
    """VoicemailUserEntry events -> directory entries. Invalid mailboxes/addresses are skipped and logged;
    a mailbox listed in several voicemail contexts is taken once (the first)."""
    entries: list[DirectoryEntry] = []
    seen: set[str] = set()
    for item in items:
        mailbox = item.get("VoiceMailbox")
        if not _MAILBOX.match(mailbox):
            log.warning("voicemail directory: mailbox %r skipped (not a dialable extension)", mailbox[:40])
            continue
        if mailbox in seen:
            continue
        seen.add(mailbox)
        email = normalize_address(item.get("Email"))
        emails: tuple[str, ...] = ()
        if email:
            if _EMAIL.match(email):
                emails = (email,)
            else:
                log.warning("voicemail directory: mailbox %s: e-mail %r ignored (not an address)", mailbox,
                            email[:60])
        name = " ".join("".join(ch if ch.isprintable() else " " for ch in item.get("Fullname")).split())[:100]
        entries.append(DirectoryEntry(extension=mailbox, emails=emails, name=name, source=VOICEMAIL_SOURCE))
    return entries


async def fetch_voicemail_entries(ami: AmiClient) -> list[DirectoryEntry]:
    """Ask Asterisk now. Raises PbxError/AmiPermissionError (needs write=call) when it cannot."""
    return entries_from_voicemail(await ami.voicemail_users())
