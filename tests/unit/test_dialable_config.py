"""The config accepts only extensions and rooms AUTOCALL can dial (issue 14): one pattern for both."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.ami.wire import validate_extension, validate_room
from pbxsync.sync.config import DIALABLE, parse_config
from pbxsync.sync.errors import ConfigError

REFUSED_BY_AUTOCALL = ["_X.", "_101", "-5", "101\n", "8001_a", "*97", "#1", "+4930", "10 1", "8001;x", ""]


def config_with(extension: str = "101", room: str = "", rooms: tuple[str, ...] = ()) -> None:
    parse_config({"exchange": {"username": "svc@example.com"}, "pbx": {"rooms": list(rooms)},
                  "users": [{"extension": extension, "email": "alice@example.com", "room": room}]})


@pytest.mark.parametrize("value", [v for v in REFUSED_BY_AUTOCALL if v])
def test_what_autocall_cannot_dial_is_refused_everywhere(value: str) -> None:
    with pytest.raises(ConfigError, match=r"users\[0\]\.extension"):
        config_with(extension=value)
    with pytest.raises(ConfigError, match=r"users\[0\]\.room"):
        config_with(room=value)
    with pytest.raises(ConfigError, match=r"pbx\.rooms\[0\]"):
        config_with(rooms=(value,))


def test_plain_extensions_and_rooms_are_accepted() -> None:
    config_with(extension="101", room="8001", rooms=("8090", "conf-a", "A1"))


@given(st.text(alphabet="0123456789abcXYZ-_*#+.\n ;", min_size=1, max_size=34))
def test_whatever_the_config_accepts_autocall_can_dial_and_join(value: str) -> None:
    if DIALABLE.fullmatch(value):
        assert validate_extension(value) == value
        assert validate_room(value) == value
