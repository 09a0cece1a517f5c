"""`pbxsync simulate outbox`: reads a running simulator's outbox over its control interface (loopback only)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from pbxsync.sync.errors import UserError
from pbxsync.sync.simulator.outbox import OUTBOX_PATH

_MAX_BYTES = 64 * 1024 * 1024


def _printable(text: str, width: int) -> str:
    clean = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def fetch_outbox(url: str, ca_file: str = "") -> list[dict[str, Any]]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in ("127.0.0.1", "localhost"):
        raise UserError(f"--url: expected http(s)://127.0.0.1:PORT of a simulator (loopback only), got {url!r}")
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file or None)
    target = f"{parts.scheme}://{parts.netloc}{OUTBOX_PATH}"
    try:
        with urllib.request.urlopen(target, timeout=10, context=context) as response:  # noqa: S310 - loopback
            document = json.loads(response.read(_MAX_BYTES))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UserError(f"cannot read the outbox at {target}: {exc}") from None
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, list):
        raise UserError(f"{target} did not answer with an outbox")
    return [m for m in value if isinstance(m, dict)]


def render_outbox(messages: list[dict[str, Any]]) -> str:
    if not messages:
        return "the outbox is empty"
    lines = []
    for m in messages:
        to = ", ".join(str(a) for a in m.get("to", []))
        lines.append(f"#{m.get('id')} {m.get('sent_at')} via {m.get('via')} from {_printable(str(m.get('sender')), 60)}"
                     f" to {_printable(to, 80)}")
        lines.append(f"    subject: {_printable(str(m.get('subject', '')), 120)}")
    return "\n".join(lines)
