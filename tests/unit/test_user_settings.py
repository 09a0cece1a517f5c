"""The precedence of a user's own settings over the config (plugin.user_settings)."""

from __future__ import annotations

from dataclasses import replace

from pbxsync.plugin.user_settings import effective_config, valid_choice
from pbxsync.sync.config import Config, PbxConfig, UserConfig, WebConfig

BOB = UserConfig("102", ["bob@example.com"], "Bob", room="801", sync_contacts=True, sync_calendar=True)


def config(*allowed: str) -> Config:
    return Config(users=[BOB], pbx=PbxConfig(rooms=["800", "801", "802"]), web=WebConfig(user_settings=list(allowed)))


def test_an_allowed_choice_beats_the_config() -> None:
    bob = effective_config(config("room", "sync_calendar"), {"102": {"room": "802", "sync_calendar": False}}).users[0]
    assert (bob.room, bob.sync_calendar, bob.sync_contacts) == ("802", False, True)


def test_a_setting_the_admin_does_not_allow_is_forced_to_the_config_value() -> None:
    bob = effective_config(config("room"), {"102": {"sync_contacts": False, "room": "800"}}).users[0]
    assert (bob.sync_contacts, bob.room) == (True, "800")


def test_a_room_no_longer_in_the_pool_falls_back_to_the_config() -> None:
    cfg = config("room")
    assert effective_config(cfg, {"102": {"room": "802"}}).users[0].room == "802"
    shrunk = replace(cfg, pbx=PbxConfig(rooms=["800", "801"]))
    assert effective_config(shrunk, {"102": {"room": "802"}}).users[0].room == "801"


def test_any_free_room_is_a_choice_and_hostile_values_are_not() -> None:
    cfg = config("room", "sync_contacts")
    assert valid_choice(cfg, "room", "")
    for name, value in (("room", "800&PJSIP/999"), ("room", 800), ("sync_contacts", "yes"), ("pin", "1")):
        assert not valid_choice(cfg, name, value)
    assert effective_config(cfg, {"102": {"room": "800&x", "sync_contacts": "no"}}).users[0] == BOB


def test_without_choices_the_config_is_the_files() -> None:
    cfg = config("room")
    assert effective_config(cfg, {}) is cfg
    assert effective_config(config(), {"102": {"room": "800"}}).users[0] == BOB
