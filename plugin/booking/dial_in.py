"""How people outside the office reach a booked room: one wording for the meeting's "Join by phone" block and
the portal's conference page, so what the invitation says and what the page shows never differ."""

from __future__ import annotations

from collections.abc import Sequence


def outside_dial_in(numbers: Sequence[str], room: str, form: str) -> list[str]:
    """The lines for callers from outside: `[pbx] dial_in_numbers` with the room dialled directly after the
    number (`form = "direct"`) or keyed in once connected (`"dtmf"`); none when no number is configured."""
    if not numbers:
        return []
    if form == "direct":
        return ["Dial-in: " + ", ".join(f"{number}-{room}" for number in numbers)]
    return ["Dial-in: " + ", ".join(numbers), f"Then key in the room number {room} followed by #"]
