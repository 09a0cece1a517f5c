"""Signed session cookies and CSRF tokens. Pure: the key and the time are inputs.

A cookie is `<session id>.<extension>.<expiry, epoch seconds>.<HMAC-SHA256>`; a forged or altered one,
or one past its expiry, reads as no session. The server also keeps each session id (hashed) so signing
out, or changing the password, revokes it before it expires (plugin.web.accounts).
A form's CSRF token is an HMAC of the session id (before sign-in: of a random pre-session cookie), so
a page from another site cannot know it; every POST must carry it (plugin.web.security).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from pbxsync.sync.config import DIALABLE

COOKIE = "pbxsync_session"
PRE_COOKIE = "pbxsync_pre"  # before sign-in: what the sign-in form's CSRF token is bound to
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class SessionCookie:
    session_id: str
    extension: str
    expires: datetime


def _mac(key: bytes, purpose: str, text: str) -> str:
    return hmac.new(key, f"{purpose}|{text}".encode(), hashlib.sha256).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_id_hash(session_id: str) -> str:
    """How the server stores a session id: a copy of the database holds no usable cookie."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def encode_cookie(key: bytes, session_id: str, extension: str, expires: datetime) -> str:
    body = f"{session_id}.{extension}.{int(expires.timestamp())}"
    return f"{body}.{_mac(key, 'session', body)}"


def decode_cookie(key: bytes, value: str, now: datetime) -> SessionCookie | None:
    """The session a cookie names, or None when it is forged, malformed or expired."""
    if len(value) > 300:
        return None
    body, _, mac = value.rpartition(".")
    if not hmac.compare_digest(mac.encode(), _mac(key, "session", body).encode()):
        return None
    parts = body.split(".")
    if len(parts) != 3 or not DIALABLE.fullmatch(parts[1]) or not parts[2].isdigit():
        return None
    expires = datetime.fromtimestamp(int(parts[2]), tz=now.tzinfo)
    if expires <= now:
        return None
    return SessionCookie(parts[0], parts[1], expires)


def csrf_token(key: bytes, bound_to: str) -> str:
    """The token forms carry for the session (or pre-session) id `bound_to`."""
    return _mac(key, "csrf", bound_to)


def csrf_ok(key: bytes, bound_to: str, token: str) -> bool:
    return bool(bound_to) and hmac.compare_digest(token.encode(), csrf_token(key, bound_to).encode())
