"""The Location grammar (docs/meetings.md): which meetings are conferences, which auto-dial."""

from __future__ import annotations

import pytest

from pbxsync.plugin.booking.location import parse_location


@pytest.mark.parametrize("location", [
    "PBX", "pbx", "Pbx", "  PBX  ", "PBX please dial in", "\u00a0PBX\u00a0", "\u2003PBX", "\tPBX\n",
    "Room 1; PBX", "Room 1;PBX;Room 2", "PBX;", "\u200bPBX", "\ufeffPBX", "ＰＢＸ", "PBX\u3000AUTOCALLX",
])
def test_conference_without_autocall(location: str) -> None:
    request = parse_location(location)
    assert request is not None
    assert request.autocall is False


@pytest.mark.parametrize("location", [
    "PBX AUTOCALL", "pbx autocall", "PBX   AutoCall", "PBX\u00a0AUTOCALL", "Room 1; PBX AUTOCALL",
    "PBX; PBX AUTOCALL", "PBX AUTOCALL; PBX", "ＰＢＸ ＡＵＴＯＣＡＬＬ", "PBX AUTOCALL and more words",
])
def test_conference_with_autocall(location: str) -> None:
    request = parse_location(location)
    assert request is not None
    assert request.autocall is True


@pytest.mark.parametrize("location", [
    "", " ", ";", "; ;", "PBXAUTOCALL", "Room PBX", "PBX-Room", "PBX:", "the PBX", "P BX",
    "РВХ",  # Cyrillic look-alikes
    "ΡΒΧ",  # Greek look-alikes
    "Room 1; Room 2",
    "AUTOCALL PBX",
])
def test_not_a_conference(location: str) -> None:
    assert parse_location(location) is None


def test_autocall_must_be_the_second_word() -> None:
    request = parse_location("PBX now AUTOCALL")
    assert request is not None and request.autocall is False


def test_hostile_length_is_bounded_and_does_not_crash() -> None:
    assert parse_location("x" * 1_000_000) is None
    request = parse_location("PBX AUTOCALL;" + "y;" * 200_000)
    assert request is not None and request.autocall is True
