"""Wrong LDAP binds: delayed per (source, account) and per source, logged once per window.

A guesser at one address waits longer and longer between tries (plugin.throttle: up to 30 s per account,
5 s across accounts), and each connection is closed after `[ldap] max_bind_failures` wrong binds. The
real user is never locked out: their (source, account) delay is cleared by the right password, and
failures decay (half-life ten minutes). Guessing from many connections at once does not help: attempts
from one source queue behind each other.
"""

from __future__ import annotations

import logging

from pbxsync.plugin.ldap.index import normalise_dn
from pbxsync.plugin.throttle import FailureThrottle, Policy, WindowedLog

log = logging.getLogger("pbxsync.ldap")

ACCOUNT = Policy(free=3, first=0.5, longest=30.0)
SOURCE = Policy(free=10, first=0.25, longest=5.0)


def account_key(name: str) -> str:
    return (normalise_dn(name) if "=" in name else name.strip().lower())[:256]


class BindGuard:
    def __init__(self) -> None:
        self.throttle = FailureThrottle()
        self.refusals = WindowedLog(60.0)

    def _keys(self, source: str, name: str) -> list[tuple[object, Policy]]:
        return [(("account", source, account_key(name)), ACCOUNT), (("source", source), SOURCE)]

    def admit(self, source: str, name: str, now: float) -> float | None:
        """Seconds this attempt waits before it is checked; None: refuse it unchecked."""
        return self.throttle.admit(self._keys(source, name), now)

    def record(self, source: str, name: str, ok: bool, now: float) -> None:
        self.throttle.record(self._keys(source, name), ok, now)

    def log_refusal(self, source: str, name: str, why: str, now: float) -> None:
        count = self.refusals.note(source, now)
        if count:
            log.info("LDAP: %d bind(s) from %s refused in the last minute (latest as %r: %s)", count, source,
                     name[:200], why)
