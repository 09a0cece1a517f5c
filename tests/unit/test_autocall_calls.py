"""How one AUTOCALL call's AMI failures become outcomes: a refused Originate is a failed try, never `not_sent`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.autocall.calls import place_call
from pbxsync.plugin.autocall.planner import Attempt, Outcome, PlannedCall, PlannerSettings, plan_calls
from pbxsync.plugin.autocall.settings import AutocallSettings
from pbxsync.plugin.booking.model import Booking, BookingDraft, Participant, Role, StoredState
from pbxsync.sync.errors import AmiRefusedError, PbxError
from pbxsync.sync.secrets import Secret

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PEOPLE = (Participant("101", "a@x.com", "Alice", Role.HOST, "organizer", id=1),)
BOOKING = Booking(7, BookingDraft("uid-1", "", "Weekly", "PBX AUTOCALL", T0, T0 + timedelta(hours=1), "UTC", True,
                                  StoredState.SCHEDULED, None, "8001", "a@x.com", "101", True, PEOPLE))
CALL = PlannedCall(7, 1, "101", 1, "pbxsync-7-1-101-1", True)


class Refusing:
    def __init__(self, error: PbxError) -> None:
        self.error = error

    async def originate(self, request: Any, **_: Any) -> Any:
        raise self.error


async def test_an_originate_asterisk_refused_is_a_failed_try() -> None:
    refused = Refusing(AmiRefusedError("AMI Originate failed: Extension does not exist."))
    result = await place_call(cast(AmiClient, refused), AutocallSettings(), BOOKING, CALL)
    assert result.outcome is Outcome.FAILED and "Extension does not exist" in result.detail


async def test_a_link_that_is_down_sent_nothing() -> None:
    down = Refusing(PbxError("AMI link to 127.0.0.1:5038 is down; Originate not sent"))
    result = await place_call(cast(AmiClient, down), AutocallSettings(), BOOKING, CALL)
    assert result.outcome is Outcome.NOT_SENT


def test_a_failed_try_is_final_so_a_refused_call_is_not_placed_again() -> None:
    failed = Attempt(1, 1, Outcome.FAILED, T0, T0)
    plan = plan_calls(BOOKING, [failed], set(), T0 + timedelta(seconds=1), PlannerSettings())
    assert plan.calls == ()


async def test_the_client_raises_refused_for_an_error_response() -> None:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "secret", frozenset({"call", "system"}),
                                           frozenset({"originate", "call", "reporting"}))])
    port = await sim.start()
    client = AmiClient(AmiSettings(host="127.0.0.1", port=port, username="pbxsync", secret=Secret("secret")))
    try:
        client.start()
        assert await client.wait_connected(5.0)
        try:
            await client.action("Originate", [("Exten", "s"), ("Async", "true")])  # no Channel: refused
        except AmiRefusedError as exc:
            assert "Channel not specified" in str(exc)
        else:
            raise AssertionError("an Error response must raise AmiRefusedError")
    finally:
        await client.stop()
        await sim.stop()
