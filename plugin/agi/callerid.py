"""`agi://HOST:PORT/callerid`: the caller's name from the synced Exchange contacts and the PBX directory.

Who is called: the first AGI argument if the dialplan passes one (`AGI(agi://.../callerid,${EXTEN})`),
else `agi_extension`, else `agi_dnid`; it is looked up among the PBX users' extensions.

Which name wins, in order:
1. The caller ID is a PBX user's extension (an internal call): that user's name (source `extension`).
2. A contact of the called user's own mailbox whose number matches (source `contact`).
3. A contact of a shared mailbox (source `contact`): `[agi] callerid_shared_mailboxes`; unset, the same
   mailboxes as the LDAP phonebook shares (`[ldap] shared_mailboxes`), so a colleague's private contact
   never names a call where the phonebook would not show it; `"*"` or `[]` means every synced mailbox.
Within one tier an exact E.164 match beats a digits-only match, then the oldest contact wins (stable).

Numbers match in any form: the caller ID is normalised exactly like stored numbers (`sync.phones`), so
`03012344711`, `+493012344711`, `00493012344711` and a stored `+49 30 1234-4711` agree (default region
`[sync] default_region`); numbers phonenumbers cannot parse match on their digits. An unknown number
leaves the caller's name untouched; PBXSYNC_CALLERID_SOURCE says `contact`, `extension` or `none`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from pbxsync.plugin.agi.identity import may_claim_extension
from pbxsync.plugin.agi.server import AgiSession
from pbxsync.plugin.directory import Directory, normalize_address
from pbxsync.sync import phones
from pbxsync.sync.config import Config
from pbxsync.sync.errors import StoreError
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.agi.callerid")

SOURCE_VARIABLE = "PBXSYNC_CALLERID_SOURCE"
MAX_NAME_LENGTH = 64  # phones show far less; Asterisk keeps it whole
_NOT_A_NUMBER = {"", "unknown", "anonymous", "restricted", "private", "unavailable"}


@dataclass(frozen=True)
class Candidate:
    """A contact whose phone matched the caller's number."""

    contact_id: int
    mailbox: str
    name: str
    exact: bool  # matched on E.164 (not only on digits)


@dataclass(frozen=True)
class CallerIdResult:
    name: str | None
    source: str  # contact | extension | none
    mailbox: str = ""


NONE = CallerIdResult(None, "none")


def contact_name(display_name: str, given: str, surname: str, company: str) -> str:
    return (display_name.strip() or f"{given.strip()} {surname.strip()}".strip() or company.strip())


def choose_contact(candidates: Sequence[Candidate], own_mailbox: str,
                   shared_mailboxes: Collection[str]) -> Candidate | None:
    """Pure: the best candidate for a call to the user whose mailbox is `own_mailbox` ("" = unknown).
    `shared_mailboxes` empty means every mailbox is shared."""

    def tier(c: Candidate) -> int | None:
        if own_mailbox and c.mailbox == own_mailbox:
            return 0
        if not shared_mailboxes or c.mailbox in shared_mailboxes:
            return 1
        return None

    ranked = [(t, not c.exact, c.contact_id, c) for c in candidates if c.name and (t := tier(c)) is not None]
    return min(ranked, key=lambda r: r[:3])[3] if ranked else None


SHARES_NOTHING = frozenset({""})  # no contact's mailbox is "": for choose_contact, which reads empty as "all"


def callerid_sharing(config: Config) -> frozenset[str]:
    """The shared mailboxes for `choose_contact` (empty = every mailbox), following `[ldap]
    shared_mailboxes` unless `[agi] callerid_shared_mailboxes` is set."""
    listed = config.agi.callerid_shared_mailboxes
    if listed is None:
        listed = config.ldap.shared_mailboxes
        if not listed:
            return SHARES_NOTHING  # the phonebook shares nothing: neither does caller ID
    if any(m.strip() == "*" for m in listed):
        return frozenset()
    return frozenset(normalize_address(m) for m in listed)


def normalise(raw: str, region: str) -> tuple[str | None, str]:
    """(E.164 or None, digits) exactly as `sync.phones` normalises stored numbers."""
    n = phones.normalise_number(raw, region)
    return n.e164, n.digits


def called_extension(env_get: Callable[[str, str], str], args: Sequence[str]) -> str:
    for raw in (args[0] if args else "", env_get("extension", ""), env_get("dnid", "")):
        value = raw.strip()
        if value and value not in ("s", "unknown"):
            return value
    return ""


_LOOKUP_SQL = """
SELECT c.id, c.mailbox, c.display_name, c.given_name, c.surname, c.company, p.e164 = :e164
FROM contact_phones p JOIN contacts c ON c.id = p.contact_id
WHERE p.e164 = :e164 OR p.digits = :digits
LIMIT 200
"""


class CallerIdLookup:
    """The lookup itself, usable without a channel (CLI, tests, benchmark).

    A lookup is one indexed query of some microseconds, cheaper than aiosqlite's hop to its thread, so
    for a database file it runs on a read-only sqlite3 connection of its own, in the event loop (WAL:
    readers never wait for the sync's writes). An in-memory store is read through the store itself.
    """

    def __init__(self, store: Store, config: Config, directory: Callable[[], Directory] | None = None) -> None:
        self.store = store
        self._reader: sqlite3.Connection | None = None
        if store.path != ":memory:":
            uri = Path(store.path).resolve().as_uri() + "?mode=ro"
            self._reader = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            self._reader.execute("PRAGMA query_only = 1")
        self.region = config.sync.default_region
        self.shared = callerid_sharing(config)
        fixed = Directory.from_config(config)
        self.directory = directory or (lambda: fixed)

    async def candidates(self, caller: str) -> list[Candidate]:
        e164, digits = normalise(caller, self.region)
        if not digits:
            return []
        params = {"e164": e164 or "\x00no-e164", "digits": digits}
        rows: Sequence[Sequence[object]]
        if self._reader is not None:
            try:
                rows = self._reader.execute(_LOOKUP_SQL, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"caller-ID lookup failed: {exc}") from exc
        else:
            async with self.store.conn.execute(_LOOKUP_SQL, params) as cur:
                rows = list(await cur.fetchall())
        return [Candidate(int(str(r[0])), str(r[1]), contact_name(str(r[2]), str(r[3]), str(r[4]), str(r[5])),
                          bool(r[6])) for r in rows]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def lookup(self, caller: str, called: str = "", channel: str = "") -> CallerIdResult:
        caller = caller.strip()[:64]
        if caller.lower() in _NOT_A_NUMBER:
            return NONE
        directory = self.directory()
        # A colleague's name only for a call that may be from that colleague: not for a trunk presenting
        # an internal extension (caller IDs from outside can be forged).
        internal = directory.by_extension(caller) if may_claim_extension(channel, caller) else None
        if internal is not None and internal.name.strip():
            return CallerIdResult(internal.name.strip(), "extension", internal.mailbox)
        called_entry = directory.by_extension(called) if called else None
        own = called_entry.mailbox if called_entry is not None else ""
        best = choose_contact(await self.candidates(caller), own, self.shared)
        if best is None:
            return NONE
        return CallerIdResult(best.name, "contact", best.mailbox)


class CallerIdService:
    """The FastAGI handler for `/callerid`."""

    def __init__(self, lookup: CallerIdLookup) -> None:
        self.lookup = lookup

    async def __call__(self, session: AgiSession) -> None:
        request = session.request
        caller = request.get("callerid")
        called = called_extension(request.get, request.args)
        result = await self.lookup.lookup(caller, called, request.get("channel"))
        if result.name:
            await session.set_variable("CALLERID(name)", result.name, MAX_NAME_LENGTH)
        await session.set_variable(SOURCE_VARIABLE, result.source)
        log.debug("caller ID %r to %r: %s", caller[:32], called[:32], result.source)
