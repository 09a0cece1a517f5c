"""A new Exchange backend is one module: registering it is all the config, the factory and `pbxsync check` need.

`EchoBackend` below stands for such a module. Nothing else in this test (nor in pbxsync) names it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from pbxsync.plugin.check.exchange import check_exchange
from pbxsync.plugin.check.runner import config_result
from pbxsync.sync.config import Config, UserConfig, parse_config
from pbxsync.sync.errors import ConfigError, SourceAccessError
from pbxsync.sync.model import CalendarChanges, CalendarWindow, ContactChanges
from pbxsync.sync.preflight import CheckResult, Outcome, passed
from pbxsync.sync.sources import registry
from pbxsync.sync.sources.backend import Backend, MailboxProbe, ReachTarget
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.factory import make_source

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class EchoOptions:
    url: str
    greeting: str = "hello"


class EchoSource:
    """Reads every mailbox but bob's."""

    def __init__(self, options: EchoOptions) -> None:
        self.options = options
        self.closed = False

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        return ContactChanges(sync_state=sync_state)

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges:
        return CalendarChanges(sync_state=sync_state)

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        if mailbox.startswith("bob@"):
            raise SourceAccessError(f"echo {mailbox}: not yours")
        return CalendarWindow(start, end)

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        return None

    async def close(self) -> None:
        self.closed = True


class EchoBackend(Backend):
    name = "echo"
    options = EchoOptions

    def __init__(self) -> None:
        self.sources: list[EchoSource] = []

    @staticmethod
    def settings(config: Config) -> EchoOptions:
        assert isinstance(config.exchange.options, EchoOptions)
        return config.exchange.options

    def make_source(self, config: Config) -> MailboxSource:
        self.sources.append(EchoSource(self.settings(config)))
        return self.sources[-1]

    def problems(self, config: Config) -> list[str]:
        return [] if config.exchange.username else ["exchange.username: the echo backend needs one"]

    def reach_targets(self, config: Config) -> list[ReachTarget]:
        return [ReachTarget("echo service", self.settings(config).url)]

    def account(self, config: Config) -> str:
        return f"echo:{config.exchange.username}"

    def access_fix(self, config: Config, user: UserConfig) -> str:
        return f"say {self.settings(config).greeting} to {user.mailbox}"

    def extra_checks(self, config: Config, source: MailboxSource, probes: list[MailboxProbe]) -> list[CheckResult]:
        return [passed("echo greeting", f"{self.settings(config).greeting}, {len(probes)} mailboxes")]


@pytest.fixture
def echo() -> Iterator[EchoBackend]:
    backend = EchoBackend()
    registry.register(backend)
    yield backend
    registry.unregister(backend.name)


def echo_config(url: str = "http://127.0.0.1:9", **echo_table: Any) -> dict[str, Any]:
    return {"exchange": {"backend": "echo", "username": "svc", "echo": {"url": url, **echo_table}},
            "users": [{"extension": "101", "email": "alice@example.com"},
                      {"extension": "102", "email": "bob@example.com"}]}


def test_config_accepts_a_registered_backend_and_reads_its_table(echo: EchoBackend) -> None:
    cfg = parse_config(echo_config(greeting="moin"))
    assert cfg.exchange.backend == "echo"
    assert cfg.exchange.options == EchoOptions("http://127.0.0.1:9", "moin")
    assert "backend echo" in config_result(cfg).detail


def test_the_backend_table_is_checked_like_any_other(echo: EchoBackend) -> None:
    data = echo_config(greeting=3, bogus=True)
    del data["exchange"]["echo"]["url"]
    del data["exchange"]["username"]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    problems = caught.value.problems
    assert "exchange.echo.url: required" in problems
    assert "exchange.echo.greeting: expected a string, got an integer" in problems
    assert "exchange.echo.bogus: unknown key" in problems
    assert "exchange.username: the echo backend needs one" in problems  # the backend's own validation


def test_a_backend_table_only_belongs_to_the_chosen_backend(echo: EchoBackend) -> None:
    data = {"exchange": {"username": "svc", "password": "pw", "echo": {"url": "http://x"}}}  # backend = ews
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.problems == ["exchange.echo: unknown key"]


def test_an_unknown_backend_lists_the_registered_ones(echo: EchoBackend) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"exchange": {"backend": "imap", "username": "svc", "password": "pw"}})
    assert 'exchange.backend: must be "ews", "graph" or "echo", got \'imap\'' in caught.value.problems


def test_without_it_registered_the_name_is_unknown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"exchange": {"backend": "echo", "username": "svc", "password": "pw"}})
    assert 'exchange.backend: must be "ews" or "graph", got \'echo\'' in caught.value.problems


def test_the_factory_builds_its_source(echo: EchoBackend) -> None:
    source = make_source(parse_config(echo_config()))
    assert isinstance(source, EchoSource) and source is echo.sources[-1]


async def test_check_runs_its_checks_and_fix_hints(echo: EchoBackend) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        cfg = parse_config(echo_config(url=f"http://127.0.0.1:{listening.getsockname()[1]}", greeting="moin"))
        results = await check_exchange(cfg, make_source, NOW, within=5)
    lines = {r.name: r for r in results}
    assert [r.name for r in results] == ["exchange reachable (echo service)", "exchange authentication",
                                         "echo greeting", "mailbox alice@example.com (101)",
                                         "mailbox bob@example.com (102)"]
    assert all(r.passed for r in results[:-1])
    assert lines["exchange authentication"].detail == "accepted for echo:svc"
    assert lines["echo greeting"].detail == "moin, 2 mailboxes"
    bob = lines["mailbox bob@example.com (102)"]
    assert bob.outcome is Outcome.FAIL and bob.fix == "say moin to bob@example.com"
    assert echo.sources[-1].closed


def test_names_are_unique_and_table_safe(echo: EchoBackend) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register(EchoBackend())

    class Spaced(EchoBackend):
        name = "my backend"

    with pytest.raises(ValueError, match="lower-case letters"):
        registry.register(Spaced())
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("ews")
    assert registry.backend_names() == ["ews", "graph", "echo"]
