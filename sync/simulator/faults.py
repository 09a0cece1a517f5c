"""What tests do to a simulated Exchange besides changing mailboxes: inject faults, count requests.

A fault is protocol-neutral; each server renders it its own way (a SOAP fault, an HTTP 429, ...).
Operation names are the server's own ("SyncFolderItems", "GetItem", "calendarView.delta" ...).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """A failure a server renders on its protocol.

    kind: "server_busy" (back_off_ms), "access_denied", "nonexistent_mailbox", "unauthorized" (HTTP 401),
    "http_status" (status), "malformed" (a truncated/garbled body), "raw" (send `body` as is),
    "duplicate_items" (every item in the response twice).
    """

    kind: str
    back_off_ms: int = 0
    status: int = 500
    body: bytes = b""


@dataclass
class _FaultRule:
    fault: Fault
    operation: str | None
    mailbox: str | None
    remaining: int  # < 0 = forever


class FaultPlan:
    """Faults waiting for the requests they match, first injected first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_FaultRule] = []

    def inject(self, fault: Fault, operation: str | None = None, mailbox: str | None = None,
               times: int = 1) -> None:
        """The next `times` matching requests fail with `fault` (times < 0: until clear())."""
        with self._lock:
            self._rules.append(_FaultRule(fault, operation, mailbox.lower() if mailbox else None, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, operation: str, mailbox: str | None) -> Fault | None:
        """The fault for this request, if one matches (None in a rule matches every operation/mailbox)."""
        with self._lock:
            for rule in self._rules:
                if rule.operation not in (None, operation):
                    continue
                if rule.mailbox is not None and rule.mailbox != (mailbox or "").lower():
                    continue
                if rule.remaining > 0:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                return rule.fault
            return None


class RequestCounters:
    """Requests served, by operation and by (operation, mailbox). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_op: Counter[str] = Counter()
        self._by_op_mailbox: Counter[tuple[str, str]] = Counter()

    def count(self, operation: str, mailbox: str = "") -> None:
        with self._lock:
            self._by_op[operation] += 1
            self._by_op_mailbox[(operation, mailbox.lower())] += 1

    def by_operation(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_op)

    def by_mailbox(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._by_op_mailbox)

    def get(self, operation: str, mailbox: str | None = None) -> int:
        with self._lock:
            if mailbox is None:
                return self._by_op[operation]
            return self._by_op_mailbox[(operation, mailbox.lower())]

    def reset(self) -> None:
        with self._lock:
            self._by_op.clear()
            self._by_op_mailbox.clear()
