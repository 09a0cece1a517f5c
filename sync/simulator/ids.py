"""Opaque tokens the simulated Exchange hands out: item ids, change keys and sync states.

They look like Exchange's (base64 with the usual prefixes) and are stable: the same data file gives the
same ids on every run, and an occurrence's id names its series and original start.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as Graph's ids and tokens are."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def make_item_id(*parts: str) -> str:
    """A stable, Exchange-looking opaque item id derived from `parts`."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return "AAMkAD" + _b64(digest[:30])


def occurrence_item_id(master_id: str, original_start: datetime) -> str:
    stamp = original_start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return "AAMkOC" + _b64(f"{master_id}|{stamp}".encode())


def parse_occurrence_item_id(item_id: str) -> tuple[str, datetime] | None:
    if not item_id.startswith("AAMkOC"):
        return None
    try:
        master, stamp = base64.b64decode(item_id[6:], validate=True).decode("utf-8").rsplit("|", 1)
        return master, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return None


def make_change_key(seq: int) -> str:
    return "CQAAAB" + _b64(seq.to_bytes(8, "big"))


def occurrence_change_key(master_change_key: str, original_start: datetime) -> str:
    """An occurrence's change key: it changes whenever its series does."""
    digest = hashlib.sha256(f"{master_change_key}|{original_start.isoformat()}".encode()).digest()
    return "CQAAAC" + _b64(digest[:9])


def encode_sync_state(mailbox: str, folder: str, seq: int) -> str:
    return _b64(f"pbxsim1|{mailbox}|{folder}|{seq}".encode())


def decode_sync_state(token: str, mailbox: str, folder: str) -> int:
    """The sequence number in `token`; ValueError if it is not ours or for another mailbox/folder."""
    if not token:
        return 0
    try:
        tag, box, fold, seq = base64.b64decode(token, validate=True).decode("utf-8").split("|")
        number = int(seq)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid sync state") from None
    if tag != "pbxsim1" or box != mailbox or fold != folder or number < 0:
        raise ValueError("sync state belongs to another folder")
    return number
