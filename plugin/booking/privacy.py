"""Private and confidential meetings: booked, but their subject never leaves the store.

A booking is what everything outside the store reads (listings, logs, metrics, AUTOCALL's caller ID,
the demo). Its subject is set here and nowhere else: the placeholder for a private or confidential
meeting, so no later reader has to remember to hide it. The real subject stays in the synced
`occurrences` row, where only its owner's own views may read it.
"""

from __future__ import annotations

from pbxsync.sync.model import Occurrence, Sensitivity

PRIVATE_SUBJECT = "Private meeting"
PRIVATE_SENSITIVITIES = frozenset({Sensitivity.PRIVATE, Sensitivity.CONFIDENTIAL})


def is_private(occurrence: Occurrence) -> bool:
    return occurrence.sensitivity in PRIVATE_SENSITIVITIES


def booking_subject(occurrence: Occurrence) -> str:
    """The subject a booking may carry: the meeting's, or the neutral placeholder for a private one."""
    return PRIVATE_SUBJECT if is_private(occurrence) else occurrence.subject
