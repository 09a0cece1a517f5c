"""One AUTOCALL call: the Originate for a planned call, and its outcome as the planner counts it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pbxsync.plugin.ami.client import AmiClient, OriginateRequest
from pbxsync.plugin.ami.wire import callerid, render_dial, validate_room
from pbxsync.plugin.autocall.planner import Outcome, PlannedCall
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.booking.model import Booking
from pbxsync.sync.errors import AmiPermissionError, AmiRefusedError, PbxError, ValidationError

log = logging.getLogger("pbxsync.autocall")


def originate_request(settings: AutocallSettings, booking: Booking, call: PlannedCall) -> OriginateRequest:
    """Raises ValidationError for a room or extension that is no safe dial string."""
    draft = booking.draft
    room = validate_room(draft.room or "")
    confirm = "1" if settings.confirm else "0"
    return OriginateRequest(
        channel=render_dial(settings.dial_template, call.extension), channel_id=call.channel_id,
        context=settings.context,
        variables=(("PBXSYNC_ROOM", room), ("PBXSYNC_ROLE", "host" if call.host else "guest"),
                   ("PBXSYNC_CONFIRM", confirm)),
        caller_id=callerid(draft.subject, room),
        timeout_ms=int(settings.planner.ring_timeout.total_seconds() * 1000))


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    reason: str = ""  # Asterisk's Originate Reason code
    detail: str = ""


async def place_call(ami: AmiClient, settings: AutocallSettings, booking: Booking, call: PlannedCall,
                     sending: Callable[[], None] = lambda: None) -> CallResult:
    """Originate `call` and wait for its outcome (`sending` runs just before the Originate is written).

    The call's own failures are outcomes, not exceptions: a hostile value (refused before anything is sent)
    a missing AMI permission and an Originate Asterisk refused are `failed`, a link that is down is `not_sent`
    (no try).
    """
    try:
        request = originate_request(settings, booking, call)
        sending()
        result = await ami.originate(request)
    except ValidationError as exc:
        log.error("autocall: booking %d, extension %s: %s", booking.id, call.extension, exc)
        return CallResult(Outcome.FAILED, detail=str(exc))
    except AmiPermissionError as exc:
        log.error("autocall: %s", exc)
        return CallResult(Outcome.FAILED, detail=str(exc))
    except AmiRefusedError as exc:
        # Asterisk read the Originate and refused it (e.g. the AUTOCALL context is not loaded): a try that
        # failed, never `not_sent`, or the same refused call would be placed again at once, for ever.
        log.error("autocall: booking %d, extension %s: %s", booking.id, call.extension, exc)
        return CallResult(Outcome.FAILED, detail=str(exc))
    except PbxError as exc:
        return CallResult(Outcome.NOT_SENT, detail=str(exc))
    return CallResult(Outcome(result.outcome.value), result.reason, result.detail)
