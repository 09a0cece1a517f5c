"""`pbxsync check` for `[presence]` against the AMI simulator: Setvar (write class `call`) and the BLF hints
that name `Custom:pbxsync-<ext>`, each with the fix in words (plugin/check/presence.py). The same lines
against a real Asterisk 22: tests/integration/test_check_asterisk.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest

from pbxsync.plugin.ami.sim_world import DEFAULT_AUTOCALL_CONTEXT
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.check.ami import check_ami
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.preflight import CheckResult, Outcome
from tests.integration.conftest import LEAST_PRIVILEGE
from tests.support.ports import refused_port

Start = Callable[..., Any]


def config_for(port: int, presence: bool = True, users: Iterable[str] = ("101", "102")) -> Config:
    return parse_config({
        "exchange": {"username": "svc@example.com"},
        "pbx": {"host": "127.0.0.1", "port": port, "username": "pbxsync", "secret": "ami-secret"},
        "presence": {"enabled": presence},
        "users": [{"extension": ext, "email": f"u{ext}@example.com"} for ext in users],
    })


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


@pytest.fixture
async def start_ami() -> AsyncIterator[Start]:
    made: list[AsteriskSimulator] = []

    async def start(hints: Iterable[tuple[str, str]] = (), user: SimUser = LEAST_PRIVILEGE) -> AsteriskSimulator:
        dialplan = {"pbxsync-autocall": list(DEFAULT_AUTOCALL_CONTEXT),
                    "from-internal": [(ext, "hint", devices, "") for ext, devices in hints]}
        sim = AsteriskSimulator(users=[user], login_fail_delay=0.0, dialplan=dialplan)
        await sim.start()
        made.append(sim)
        return sim

    yield start
    for sim in made:
        await sim.stop()


async def test_no_presence_lines_while_presence_is_off(start_ami: Start) -> None:
    sim = await start_ami()
    names = [r.name for r in await check_ami(config_for(sim.port, presence=False), within=5)]
    assert not [n for n in names if n.startswith("presence")]


async def test_setvar_allowed_and_every_user_hinted_pass(start_ami: Start) -> None:
    sim = await start_ami([("101", "PJSIP/101&Custom:pbxsync-101"),
                           ("102", "SIP/102&Custom:pbxsync-102,CustomPresence:102")])
    results = await check_ami(config_for(sim.port), within=5)
    assert [r.line() for r in results if not r.passed] == []
    found = by_name(results)
    assert "No variable specified" in found["presence: ami setvar"].detail  # the probe set nothing
    assert found["presence: blf hints"].outcome is Outcome.PASS
    assert sim.world.astdb == {} and sim.world.global_vars == {}


async def test_a_user_without_the_custom_state_in_a_hint_is_named_with_the_line_to_add(start_ami: Start) -> None:
    sim = await start_ami([("101", "PJSIP/101&Custom:pbxsync-101"), ("102", "PJSIP/102")])
    hints = by_name(await check_ami(config_for(sim.port), within=5))["presence: blf hints"]
    assert hints.outcome is Outcome.WARN
    assert "1 of 2 presence user(s)" in hints.detail and hints.detail.endswith(": 102")
    assert "exten => 102,hint,PJSIP/102&Custom:pbxsync-102" in hints.fix and "dialplan reload" in hints.fix


async def test_many_unhinted_users_are_counted_not_all_named(start_ami: Start) -> None:
    sim = await start_ami()
    users = [str(ext) for ext in range(101, 111)]
    hints = by_name(await check_ami(config_for(sim.port, users=users), within=5))["presence: blf hints"]
    assert "10 of 10" in hints.detail and hints.detail.endswith("101, 102, 103, 104, 105 and 5 more")


async def test_a_user_without_the_call_class_fails_setvar_naming_the_fix(start_ami: Start) -> None:
    no_call = SimUser("pbxsync", "ami-secret", frozenset({"call", "system"}), frozenset({"originate", "reporting"}))
    sim = await start_ami([("101", "PJSIP/101&Custom:pbxsync-101")], user=no_call)
    found = by_name(await check_ami(config_for(sim.port, users=["101"]), within=5))
    setvar = found["presence: ami setvar"]
    assert setvar.outcome is Outcome.FAIL and "needs write class 'call'" in setvar.detail
    assert "add 'call' to write= in the [pbxsync] section of manager.conf" in setvar.fix
    assert found["presence: blf hints"].passed  # ExtensionStateList needs call or reporting


async def test_without_an_ami_login_the_presence_lines_are_skipped() -> None:
    with refused_port() as port:
        found = by_name(await check_ami(config_for(port), within=2))
    assert found["presence: ami setvar"].outcome is Outcome.SKIP
    assert found["presence: blf hints"].outcome is Outcome.SKIP


async def test_hints_are_matched_without_regard_to_case(start_ami: Start) -> None:
    sim = await start_ami([("101", "PJSIP/101&custom:PBXSYNC-101")])
    hints = by_name(await check_ami(config_for(sim.port, users=["101"]), within=5))["presence: blf hints"]
    assert hints.outcome is Outcome.PASS, hints.line()
