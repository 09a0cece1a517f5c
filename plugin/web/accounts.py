"""Passwords, sessions and one-time sign-in links, in SQLite (migration `*_web.sql`).

- Passwords are Argon2id hashes (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3 passes). Hashing
  runs in a thread, at most two at once and never on every core: a burst of sign-ins (everyone at 9:00)
  leaves a core to the event loop (AUTOCALL, FastAGI, every other page share it) and takes at most
  ~128 MiB; the sign-ins queue instead.
- An unknown extension is verified against a dummy hash: it costs what a wrong password costs.
- Sessions: the cookie holds a random id; the store holds its SHA-256 and expiry. Signing out deletes it;
  setting a password deletes all of the user's sessions (a thief's cookie stops working).
- Sign-in links: a random token (its SHA-256 stored), valid for `LINK_HOURS`, used once: following it
  leads to "set your password", and setting it spends the link.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pbxsync.plugin.web.sessions import new_session_id, session_id_hash
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store

HASHER = PasswordHasher()
_dummy_hashes: dict[int, str] = {}  # per hasher: tests swap in a cheaper one
_HASHING = threading.BoundedSemaphore(max(1, min(2, (os.cpu_count() or 1) - 1)))  # held in the thread
LINK_HOURS = 24
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # longer is refused unhashed: Argon2 over megabytes would be a free CPU burner


def password_problem(password: str, repeated: str) -> str | None:
    """Why a new password is refused, in words; None when it is fine."""
    if password != repeated:
        return "The two passwords differ."
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Use at most {MAX_PASSWORD} characters."
    return None


def _dummy_hash() -> str:
    """A hash nobody's password matches, made with the hasher in use: it costs what a real one costs."""
    dummy = _dummy_hashes.get(id(HASHER))
    if dummy is None:
        dummy = _dummy_hashes[id(HASHER)] = HASHER.hash(secrets.token_urlsafe(16))
    return dummy


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        with _HASHING:
            return HASHER.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _hash(password: str) -> str:
    with _HASHING:
        return HASHER.hash(password)


async def check_password(store: Store, extension: str, password: str) -> bool:
    async with store.conn.execute("SELECT hash FROM web_passwords WHERE extension = ?", (extension,)) as cur:
        row = await cur.fetchone()
    return await asyncio.to_thread(_verify, str(row[0]) if row else None, password[:MAX_PASSWORD])


async def set_password(store: Store, extension: str, password: str, now: datetime) -> None:
    """Store the new hash and sign the user out everywhere."""
    hashed = await asyncio.to_thread(_hash, password)
    async with store.transaction() as conn:
        await conn.execute(
            """INSERT INTO web_passwords (extension, hash, changed_at) VALUES (?, ?, ?)
               ON CONFLICT (extension) DO UPDATE SET hash = excluded.hash, changed_at = excluded.changed_at""",
            (extension, hashed, utc_text(now)))
        await conn.execute("DELETE FROM web_sessions WHERE extension = ?", (extension,))


async def has_password(store: Store, extension: str) -> bool:
    async with store.conn.execute("SELECT 1 FROM web_passwords WHERE extension = ?", (extension,)) as cur:
        return await cur.fetchone() is not None


async def open_session(store: Store, extension: str, now: datetime, lifetime: timedelta) -> tuple[str, datetime]:
    session_id = new_session_id()
    expires = now + lifetime
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (utc_text(now),))
        await conn.execute("INSERT INTO web_sessions (id_hash, extension, created_at, expires_at) VALUES (?, ?, ?, ?)",
                           (session_id_hash(session_id), extension, utc_text(now), utc_text(expires)))
    return session_id, expires


async def session_alive(store: Store, session_id: str, extension: str, now: datetime) -> bool:
    async with store.conn.execute(
        "SELECT 1 FROM web_sessions WHERE id_hash = ? AND extension = ? AND expires_at > ?",
        (session_id_hash(session_id), extension, utc_text(now)),
    ) as cur:
        return await cur.fetchone() is not None


async def close_session(store: Store, session_id: str) -> None:
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (session_id_hash(session_id),))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_link(store: Store, extension: str, now: datetime, hours: int = LINK_HOURS) -> str:
    """A new one-time sign-in token for `extension` (earlier unused links of the user stay valid)."""
    token = secrets.token_urlsafe(32)
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM web_signin_links WHERE expires_at <= ?", (utc_text(now),))
        await conn.execute(
            "INSERT INTO web_signin_links (token_hash, extension, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (_token_hash(token), extension, utc_text(now), utc_text(now + timedelta(hours=hours))))
    return token


async def link_extension(store: Store, token: str, now: datetime) -> str | None:
    """The extension an unused, unexpired link is for; None for any other token."""
    if len(token) > 100:
        return None
    async with store.conn.execute(
        "SELECT extension FROM web_signin_links WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (_token_hash(token), utc_text(now)),
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def spend_link(store: Store, token: str, now: datetime) -> str | None:
    """Mark the link used (once: a second call finds nothing); its extension, or None."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "UPDATE web_signin_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? "
            "RETURNING extension", (utc_text(now), _token_hash(token), utc_text(now)))
        row = await cur.fetchone()
        await cur.close()
    return str(row[0]) if row else None
