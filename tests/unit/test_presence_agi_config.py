"""The /presence FastAGI service and the [presence] config rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from pbxsync.plugin.agi.server import FastAgiServer
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.presence.agi import PresenceAgiService
from pbxsync.sync.config import Config, PresenceConfig, UserConfig, parse_config
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.model import Sensitivity, ShowAs
from pbxsync.sync.store.db import Store
from tests.support.agi import T0, env_block, fake_asterisk, set_variables
from tests.support.presence import occurrence, presence_config, store_items

USERS = {"101": "alice@example.com", "102": "bob@example.com"}


async def ask(store: Store, config: Config, called: str, minutes: int = 0, **env: str) -> dict[str, str]:
    server = FastAgiServer({"presence": PresenceAgiService(store, config, FakeClock(T0 + timedelta(minutes=minutes)))},
                           "127.0.0.1", 0)
    await server.start()
    try:
        commands = await fake_asterisk(server.port, env_block("presence", arg_1=called, **env))
    finally:
        await server.close()
    return set_variables(commands)


@pytest.fixture
async def calendar(store: Store) -> Store:
    await store_items(store, "alice@example.com", occurrence("m", T0, T0 + timedelta(minutes=90),
                                                             subject="Secret", sensitivity=Sensitivity.PRIVATE),
                      now=T0)
    await store_items(store, "bob@example.com", occurrence("o", T0, T0 + timedelta(days=2), ShowAs.OOF), now=T0)
    return store


async def test_busy_user_gets_busy_until_and_show_as(calendar: Store) -> None:
    got = await ask(calendar, presence_config(USERS, forward={"101": "102"}), "101", minutes=10)
    assert got == {"PBXSYNC_BUSY": "1", "PBXSYNC_BUSY_UNTIL": "11:30", "PBXSYNC_SHOWAS": "busy",
                   "PBXSYNC_BUSY_FORWARD": "102"}
    oof = await ask(calendar, presence_config(USERS), "102", minutes=10)
    assert (oof["PBXSYNC_BUSY"], oof["PBXSYNC_BUSY_UNTIL"], oof["PBXSYNC_SHOWAS"]) == ("1", "2026-11-29 10:00", "oof")


async def test_free_after_the_end_and_never_a_guess(calendar: Store) -> None:
    free = {"PBXSYNC_BUSY": "0", "PBXSYNC_BUSY_UNTIL": "", "PBXSYNC_SHOWAS": "free", "PBXSYNC_BUSY_FORWARD": ""}
    config = presence_config(USERS, forward={"101": "102"})
    assert await ask(calendar, config, "101", minutes=90) == free
    assert await ask(calendar, config, "999", minutes=10) == free  # not a user
    for hostile in ("101,102", "%s%s", "1" * 500, "${EXTEN}"):  # nothing but an exact user matches
        assert await ask(calendar, config, hostile, minutes=10) == free
    assert await ask(calendar, presence_config(USERS, opted_out=frozenset({"101"})), "101", minutes=10) == free
    off = replace(config, presence=replace(config.presence, enabled=False))
    assert await ask(calendar, off, "101", minutes=10) == free


async def test_the_extension_comes_from_agi_extension_without_an_argument(calendar: Store) -> None:
    got = await ask(calendar, presence_config(USERS), "", minutes=10, extension="101")
    assert got["PBXSYNC_BUSY"] == "1"


def parse(presence: dict[str, object], user: dict[str, object] | None = None) -> Config:
    return parse_config({"exchange": {"username": "svc"},
                         "users": [{"extension": "101", "email": "a@example.com", **(user or {})}],
                         "presence": presence})


def test_presence_config_defaults_and_rules() -> None:
    config = parse({})
    assert config.presence == PresenceConfig()
    assert (config.presence.enabled, config.presence.busy_statuses) == (False, ["busy", "oof"])
    assert config.users[0].presence and config.users[0].presence_forward == ""
    with pytest.raises(ConfigError) as err:
        parse({"busy_statuses": ["busy", "in-a-meeting"], "message": "until {end}", "timezone": "Mars/Olympus"},
              {"presence_forward": "10 2"})
    text = str(err.value)
    for key in ("presence.busy_statuses[1]", "presence.message", "presence.timezone", "users[0].presence_forward"):
        assert key in text
    assert parse({"busy_statuses": ["tentative"], "timezone": "Europe/Berlin"}, {"presence": False}).users == [
        UserConfig(extension="101", email=["a@example.com"], presence=False)]
