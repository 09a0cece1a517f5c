"""Per-phone tokens: the secret part of a phonebook URL (`/yealink/<token>.xml`) for phones that cannot
send HTTP Basic credentials.

A token is 32 random URL-safe characters (192 bits) made by `pbxsync phonebook token EXT`; the store
keeps only its SHA-256. A slow password hash (argon2) would add nothing here: the token is random, not
chosen by a person, so it cannot be guessed from a dictionary, and the phonebook must answer an unchanged
book in well under a millisecond. Lookups go by the digest, so comparing never leaks the token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from datetime import datetime

from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store

TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 24 bytes: 32 characters


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


async def add_token(store: Store, extension: str, now: datetime) -> str:
    """A new token for the user's phone; returned once, only its digest is kept."""
    token = new_token()
    async with store.transaction() as conn:
        await conn.execute("INSERT INTO phonebook_tokens (token_sha256, extension, created_at) VALUES (?, ?, ?)",
                           (token_digest(token), extension, utc_text(now)))
    return token


async def revoke_tokens(store: Store, extension: str) -> int:
    async with store.transaction() as conn:
        cur = await conn.execute("DELETE FROM phonebook_tokens WHERE extension = ?", (extension,))
        return cur.rowcount


def read_tokens(conn: sqlite3.Connection) -> dict[str, str]:
    """digest -> extension."""
    return {str(d): str(e) for d, e in conn.execute("SELECT token_sha256, extension FROM phonebook_tokens")}
