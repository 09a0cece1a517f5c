"""Passwords and server-side sessions.

Skeleton: held in memory (`MemoryAccounts`), so the portal's pages can be built and tested; the SQLite
store (migration 0011) replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pbxsync.plugin.web.sessions import new_session_id, session_id_hash

if TYPE_CHECKING:
    from pbxsync.plugin.web.context import WebContext

HASHER = PasswordHasher()  # Argon2id with argon2-cffi's RFC 9106 "low memory" profile
# Verified when the extension has no password, so an unknown extension costs as long as a wrong password
# (no user enumeration by timing).
_DUMMY_HASH = HASHER.hash("not a password anybody has")


@dataclass
class MemoryAccounts:
    passwords: dict[str, str] = field(default_factory=dict)  # extension -> Argon2id hash
    sessions: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # id hash -> (extension, expires)


def verify(stored_hash: str | None, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def check_password(ctx: WebContext, extension: str, password: str) -> bool:
    return verify(ctx.accounts.passwords.get(extension), password)


async def set_password(ctx: WebContext, extension: str, password: str) -> None:
    ctx.accounts.passwords[extension] = HASHER.hash(password)


async def open_session(ctx: WebContext, extension: str, now: datetime, lifetime: timedelta) -> tuple[str, datetime]:
    session_id = new_session_id()
    expires = now + lifetime
    ctx.accounts.sessions[session_id_hash(session_id)] = (extension, expires)
    return session_id, expires


async def session_alive(ctx: WebContext, session_id: str, extension: str) -> bool:
    return ctx.accounts.sessions.get(session_id_hash(session_id), ("", None))[0] == extension


async def close_session(ctx: WebContext, session_id: str) -> None:
    ctx.accounts.sessions.pop(session_id_hash(session_id), None)
