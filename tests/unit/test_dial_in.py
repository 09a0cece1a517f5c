"""One wording of the outside dial-in for the meeting's "Join by phone" block and the portal's conference page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pbxsync.plugin.booking.dial_in import outside_dial_in
from pbxsync.plugin.web.conference_view import conference_view
from pbxsync.plugin.writeback.render import JoinDetails, block_lines
from pbxsync.sync.store.db import Store
from tests.support.web_employee import book, meeting

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NUMBERS = ("+49 30 1234567", "+43 1 7654321")


def test_the_room_is_keyed_in_after_the_number_or_dialled_directly() -> None:
    assert outside_dial_in(NUMBERS, "800", "dtmf") == [
        "Dial-in: +49 30 1234567, +43 1 7654321", "Then key in the room number 800 followed by #"]
    assert outside_dial_in(NUMBERS, "800", "direct") == ["Dial-in: +49 30 1234567-800, +43 1 7654321-800"]
    assert outside_dial_in((), "800", "direct") == []


def test_the_block_and_the_page_say_the_same() -> None:
    details = JoinDetails("800", "4711", True, NOW, NOW + timedelta(hours=1), "UTC", NUMBERS, "dtmf")
    lines = block_lines(details)
    assert lines[1:3] == outside_dial_in(NUMBERS, "800", "dtmf")


async def test_members_see_the_outside_numbers_and_others_do_not(store: Store) -> None:
    booking = await book(store, meeting("102", ["103"], NOW + timedelta(hours=1)), NOW)
    member = conference_view(booking, "103", NOW, pin="4711", calls={}, own_subject=None,
                             dial_in_numbers=NUMBERS, dial_in_room="direct")
    outsider = conference_view(booking, "105", NOW, pin="4711", calls={}, own_subject=None,
                               dial_in_numbers=NUMBERS, dial_in_room="direct")
    assert member.dial_in == ("Dial-in: +49 30 1234567-800, +43 1 7654321-800",)
    assert outsider.dial_in == () and outsider.pin == "" and outsider.room == ""
