"""Wrong portal passwords: throttled per extension and per client address, logged once per window.

A few typos are free; then each further failure makes the next attempt for that extension (from anywhere)
and from that address (for any extension) wait longer, doubling up to a minute (plugin.throttle). An
attempt that comes before its wait is over is refused unchecked ("too many attempts") — known and unknown
extensions alike, so the answer tells nothing. Failures decay with a half-life of a quarter of an hour and
the right password clears its extension's record: the real user is slowed while somebody guesses, never
locked out for good. Failures are logged as one line per address and minute, never with the password.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from pbxsync.plugin.throttle import FailureThrottle, Policy, WindowedLog

log = logging.getLogger("pbxsync.web")

PER_EXTENSION = Policy(free=5, first=2.0, longest=60.0, half_life=900.0, longest_queue=0.0)
PER_SOURCE = Policy(free=20, first=1.0, longest=60.0, half_life=900.0, longest_queue=0.0)


class SigninGuard:
    def __init__(self) -> None:
        self.throttle = FailureThrottle()
        self.failures = WindowedLog(60.0)

    @staticmethod
    def _keys(source: str, extension: str) -> list[tuple[Hashable, Policy]]:
        return [(("ext", extension[:64]), PER_EXTENSION), (("src", source), PER_SOURCE)]

    def admit(self, source: str, extension: str, now: float) -> bool:
        """Whether this attempt may be checked now (False: refuse it unchecked)."""
        return self.throttle.admit(self._keys(source, extension), now) is not None

    def record(self, source: str, extension: str, ok: bool, now: float, *, known: bool = True) -> None:
        self.throttle.record(self._keys(source, extension), ok, now)
        if not ok:
            self.log_failure(source, extension, now, known=known)

    def log_failure(self, source: str, extension: str, now: float, *, known: bool = True) -> None:
        """A wrong password, or an attempt refused unchecked: one log line per address and minute. What was
        typed as the extension is logged only when it is a user's (`known`): people type their password there."""
        count = self.failures.note(source, now)
        if count:
            log.warning("web sign-in: %d failed or throttled attempt(s) from %s in the last minute "
                        "(latest for %s)", count, source, f"extension {extension[:64]!r}" if known
                        else "an extension that is no user")
