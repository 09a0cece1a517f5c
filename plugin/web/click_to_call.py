"""Click to call: the PBX rings the signed-in employee's own phone, then dials the contact from it.

One AMI Originate over the daemon's link: Channel = the employee's own device (`[pbx] dial` with the
extension of the session, never a value from the request), then Context `[web] click_to_call_context`,
Exten = the contact's number in dialable form, CallerID = the contact's name (what the employee's phone
shows while it rings). The number comes from the store, not the form, and is still checked: only `+` and
digits, bounded, so nothing in it (`&`, `,`, CR/LF) can reach the dial string or the AMI headers.

The handler waits a moment for the outcome (a phone that is off or busy says so at once) and otherwise
answers "Your phone is ringing"; the Originate keeps running in the background and its outcome is logged.
Calls are limited per user (a few free, then a growing wait): a script cannot make a phone ring all day.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import weakref
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pbxsync.plugin.ami.client import AmiClient, OriginateOutcome, OriginateRequest, OriginateResult
from pbxsync.plugin.ami.wire import render_dial, sanitize_callerid_name
from pbxsync.plugin.throttle import FailureThrottle, Policy
from pbxsync.sync.config import Config
from pbxsync.sync.errors import AmiPermissionError, AmiRefusedError, PbxError, ValidationError
from pbxsync.sync.model import PhoneNumber

log = logging.getLogger("pbxsync.web")

_DIALABLE = re.compile(r"\+?[0-9]{2,20}")
# Six calls in a row are free; then each waits 5 s, doubling to a minute; the count halves every minute.
CALL_POLICY = Policy(free=6, first=5.0, longest=60.0, half_life=60.0, longest_queue=0.0)
OUTCOME_WAIT_SECONDS = 1.5  # how long the page waits for a quick answer before saying "ringing"

_BACKGROUND: set[asyncio.Task[Any]] = set()


def dialable(number: PhoneNumber) -> str:
    """What the PBX dials for a stored number: its E.164 form, else its digits (an internal number).
    Raises ValidationError for anything else."""
    text = number.e164 or number.digits
    if not _DIALABLE.fullmatch(text):
        raise ValidationError("this number cannot be dialled")
    return text


def call_request(config: Config, extension: str, number: str, name: str) -> OriginateRequest:
    """The Originate for `extension` (the session's) calling `number` (from `dialable`)."""
    if not _DIALABLE.fullmatch(number):
        raise ValidationError("this number cannot be dialled")
    channel_id = f"pbxsync-web-{secrets.token_hex(8)}"
    caller_name = sanitize_callerid_name(name, fallback=number)  # a name of only "<>": the number, not "Meeting"
    return OriginateRequest(channel=render_dial(config.pbx.dial, extension), channel_id=channel_id,
                            context=config.web.click_to_call_context, exten=number,
                            caller_id=f"{caller_name} <{number}>",
                            timeout_ms=config.autocall.ring_timeout_seconds * 1000)


# One limit per portal (per aiohttp app): kept beside it, not in the WebContext, and gone with it.
_LIMITS: weakref.WeakKeyDictionary[web.Application, FailureThrottle] = weakref.WeakKeyDictionary()


def admit_call(app: web.Application, extension: str, now: float) -> bool:
    """Counts the call against the user's limit; False: refused (too many in a short time)."""
    throttle = _LIMITS.setdefault(app, FailureThrottle())
    keys = [(("click-to-call", extension), CALL_POLICY)]
    wait = throttle.admit(keys, now)
    if wait is None or wait > 0:
        return False
    throttle.record(keys, False, now)  # every call counts, answered or not
    return True


@dataclass(frozen=True)
class CallStarted:
    ok: bool
    message: str  # for the employee, in words


_OUTCOME_WORDS = {
    OriginateOutcome.BUSY: "Your phone is busy. Hang up the other call and try again.",
    OriginateOutcome.NO_ANSWER: "Your phone did not answer in time.",
    OriginateOutcome.CONGESTION: "The phone system is overloaded; try again in a minute.",
    OriginateOutcome.FAILED: "Your phone could not be rung. Is it switched on and registered?",
    OriginateOutcome.UNKNOWN: "The phone system did not say whether your phone rang.",
}


def words_for(result: OriginateResult, name: str) -> CallStarted:
    if result.outcome is OriginateOutcome.ANSWERED:
        return CallStarted(True, f"You answered: your phone is now calling {name}.")
    return CallStarted(False, _OUTCOME_WORDS[result.outcome])


async def start_call(ami: AmiClient | None, request: OriginateRequest, name: str, extension: str) -> CallStarted:
    """Send the Originate; the outcome when it comes quickly, else "ringing" (it goes on in the background)."""
    if ami is None or not ami.connected:
        return CallStarted(False, "The phone system cannot be reached right now. Try again in a minute.")
    task = asyncio.get_running_loop().create_task(ami.originate(request))
    _BACKGROUND.add(task)
    task.add_done_callback(_finished(extension))
    done, _ = await asyncio.wait({task}, timeout=OUTCOME_WAIT_SECONDS)
    if not done:
        return CallStarted(True, f"Your phone is ringing. Pick it up to call {name}.")
    try:
        return words_for(task.result(), name)
    except ValidationError:
        return CallStarted(False, "This call cannot be placed from your extension; ask your administrator.")
    except AmiPermissionError:
        return CallStarted(False, "The phone system does not allow pbxsync to place calls; tell your administrator.")
    except AmiRefusedError:
        return CallStarted(False, "The phone system refused the call; tell your administrator.")
    except PbxError:
        return CallStarted(False, "The phone system cannot be reached right now. Try again in a minute.")


def _finished(extension: str) -> Any:
    def done(task: asyncio.Task[OriginateResult]) -> None:
        _BACKGROUND.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("click to call from %s failed: %s", extension, exc)
        else:
            log.info("click to call from %s: %s", extension, task.result().outcome.value)

    return done
