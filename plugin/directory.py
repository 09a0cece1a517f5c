"""The PBX directory: who is a PBX user, by extension and by e-mail address.

Built from the config's `[[users]]` and, later, other sources (Asterisk voicemail users). Entries given
earlier win: `Directory.from_entries(config_entries + voicemail_entries)` lets the config override.
Matching is case-insensitive and also understands the internal addresses Exchange uses for its own
users (X.500 / legacyExchangeDN; `sync.model.is_internal_address` is the rule), through the
`address_cache` table the sync engine fills.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.store.db import Store

CONFIG_SOURCE = "config"


def normalize_address(address: str) -> str:
    """The comparable form of an address: trimmed, lower-case, without `mailto:`/`smtp:` prefixes."""
    text = address.strip().lower()
    for prefix in ("mailto:", "smtp:"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return text


@dataclass(frozen=True)
class DirectoryEntry:
    extension: str
    emails: tuple[str, ...]  # normalized; the first is the mailbox
    name: str = ""
    room: str = ""
    sync_contacts: bool = False
    sync_calendar: bool = False
    source: str = CONFIG_SOURCE

    @property
    def mailbox(self) -> str:
        return self.emails[0] if self.emails else ""

    @staticmethod
    def from_user(user: UserConfig) -> DirectoryEntry:
        return DirectoryEntry(
            extension=user.extension,
            emails=tuple(normalize_address(e) for e in user.email),
            name=user.name,
            room=user.room,
            sync_contacts=user.sync_contacts,
            sync_calendar=user.sync_calendar,
        )


@dataclass(frozen=True)
class Directory:
    entries: tuple[DirectoryEntry, ...] = ()
    # Internal address -> SMTP (None: Exchange could not resolve it), both normalized.
    resolved: Mapping[str, str | None] = field(default_factory=dict)
    # Why an entry (or one of its addresses) was left out, for `pbxsync users`.
    conflicts: tuple[str, ...] = ()
    _by_email: Mapping[str, DirectoryEntry] = field(default_factory=dict, repr=False, compare=False)
    _by_extension: Mapping[str, DirectoryEntry] = field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def from_entries(entries: Iterable[DirectoryEntry],
                     resolved: Mapping[str, str | None] | None = None) -> Directory:
        """Earlier entries take precedence: a later entry with a known extension is dropped, and a
        later entry's address that an earlier entry already owns is not matched to it."""
        kept: list[DirectoryEntry] = []
        conflicts: list[str] = []
        by_email: dict[str, DirectoryEntry] = {}
        by_extension: dict[str, DirectoryEntry] = {}
        for entry in entries:
            if entry.extension in by_extension:
                first = by_extension[entry.extension]
                conflicts.append(f"extension {entry.extension} from {entry.source} ignored: "
                                 f"already defined by {first.source}")
                continue
            own: list[str] = []
            for email in entry.emails:
                if not email:
                    continue
                owner = by_email.get(email)
                if owner is not None:
                    conflicts.append(f"{email} of extension {entry.extension} ({entry.source}) ignored: "
                                     f"it belongs to extension {owner.extension}")
                    continue
                own.append(email)
            owned = DirectoryEntry(entry.extension, tuple(own), entry.name, entry.room,
                                   entry.sync_contacts, entry.sync_calendar, entry.source)
            kept.append(owned)
            by_extension[owned.extension] = owned
            for email in own:
                by_email[email] = owned
        return Directory(tuple(kept), dict(resolved or {}), tuple(conflicts), by_email, by_extension)

    @staticmethod
    def from_config(config: Config, extra: Sequence[DirectoryEntry] = (),
                    resolved: Mapping[str, str | None] | None = None) -> Directory:
        return Directory.from_entries([DirectoryEntry.from_user(u) for u in config.users] + list(extra),
                                      resolved)

    def with_resolved(self, resolved: Mapping[str, str | None]) -> Directory:
        return Directory.from_entries(self.entries, resolved)

    def smtp(self, address: str) -> str:
        """The SMTP form of `address` when known (internal forms through the cache), normalized."""
        text = normalize_address(address)
        mapped = self.resolved.get(text)
        return normalize_address(mapped) if mapped else text

    def match(self, address: str) -> DirectoryEntry | None:
        if not address.strip():
            return None
        return self._by_email.get(self.smtp(address))

    def by_extension(self, extension: str) -> DirectoryEntry | None:
        return self._by_extension.get(extension)

    def calendar_mailboxes(self) -> frozenset[str]:
        """Mailboxes whose calendars the sync engine reads (config users with calendar sync)."""
        return frozenset(e.mailbox for e in self.entries if e.sync_calendar and e.mailbox)


async def load_address_cache(store: Store) -> dict[str, str | None]:
    async with store.conn.execute("SELECT address, smtp FROM address_cache") as cur:
        rows = await cur.fetchall()
    return {normalize_address(str(a)): (normalize_address(str(s)) if s else None) for a, s in rows}


async def load_directory(store: Store, config: Config, extra: Sequence[DirectoryEntry] = ()) -> Directory:
    """The config users (then `extra` entries) with the current address cache applied."""
    return Directory.from_config(config, extra, await load_address_cache(store))


SHARE_ALL = "*"


def shared_mailboxes(config: Config) -> frozenset[str] | None:
    """`[ldap] shared_mailboxes`: the mailboxes whose synced contacts every user sees; None: all of them."""
    shared = [m.strip().lower() for m in config.ldap.shared_mailboxes]
    return None if SHARE_ALL in shared else frozenset(shared)


def visible_mailboxes(config: Config, extension: str) -> frozenset[str] | None:
    """The phonebook a PBX user sees (LDAP bound as themselves, the portal's *My contacts*): the contacts of
    their own mailbox addresses plus the shared ones; None: every mailbox; empty for an unknown user."""
    user = config.user_by_extension(extension)
    if user is None:
        return frozenset()
    shared = shared_mailboxes(config)
    return None if shared is None else shared | frozenset(m.lower() for m in user.email)
