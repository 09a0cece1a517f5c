"""`pbxsync check` against a real Asterisk 22: the least-privilege manager user passes every AMI check,
and a user missing classes, a missing dialplan context and a wrong secret are named with their fix."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pbxsync.plugin.check.ami import check_ami
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.preflight import CheckResult, Outcome
from tests.support.asterisk_harness import AsteriskInstance

pytestmark = pytest.mark.asterisk

AUTOCALL_CONTEXT = """
[pbxsync-autocall]
exten => s,1,Answer()
 same => n,ConfBridge(${FILTER(0-9,${PBXSYNC_ROOM})})
 same => n,Hangup()
"""


def config_for(instance: AsteriskInstance, secret: str | None = None) -> Config:
    return parse_config({
        "exchange": {"username": "svc@example.com"},
        "pbx": {"host": instance.host, "port": instance.port, "username": instance.user,
                "secret": secret or instance.secret},
    })


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


@pytest.fixture
def least_privilege(asterisk_factory: Callable[..., AsteriskInstance]) -> Iterator[AsteriskInstance]:
    yield asterisk_factory(extensions=AUTOCALL_CONTEXT, ami_read="call,system", ami_write="originate,call,reporting")


async def test_the_least_privilege_user_passes_every_ami_check(least_privilege: AsteriskInstance) -> None:
    results = await check_ami(config_for(least_privilege), within=10)
    assert [r.line() for r in results if not r.passed] == []
    found = by_name(results)
    assert "FullyBooted" in found["ami permission system"].detail
    assert "app_confbridge answers ConfbridgeListRooms" in found["asterisk module app_confbridge"].detail
    assert "joins ConfBridge" in found["dialplan context pbxsync-autocall"].detail
    # The originate probe placed no call.
    assert "Channel not specified" in found["ami permission originate"].detail


async def test_missing_classes_context_and_secret_are_named(
        asterisk_factory: Callable[..., AsteriskInstance]) -> None:
    # (read=system stays: the harness waits for FullyBooted; a missing read=system is covered against
    # the simulator in test_check_preflight.py)
    instance = asterisk_factory(ami_read="call,system", ami_write="call")
    found = by_name(await check_ami(config_for(instance), within=10))
    for klass in ("originate", "reporting"):
        line = found[f"ami permission {klass}"].line()
        assert line.startswith("FAIL") and f"add '{klass}' to" in line, line
    assert found["ami permission call"].passed and found["ami permission system"].passed
    assert found["dialplan context pbxsync-autocall"].outcome is Outcome.SKIP

    no_context = asterisk_factory(ami_read="call,system", ami_write="originate,call,reporting")
    context = by_name(await check_ami(config_for(no_context), within=10))["dialplan context pbxsync-autocall"]
    assert context.outcome is Outcome.FAIL and "not in the running dialplan" in context.detail
    assert "pbxsync dialplan" in context.fix and "dialplan reload" in context.fix

    wrong = by_name(await check_ami(config_for(instance, secret="not-the-secret"), within=10))
    login = wrong["ami login"].line()
    assert login.startswith("FAIL") and "fix: set [pbx] username/secret" in login
    assert "not-the-secret" not in login


async def test_the_presence_lines_against_the_least_privilege_user(
        asterisk_factory: Callable[..., AsteriskInstance]) -> None:
    """Setvar is allowed and sets nothing; ExtensionStateList lists the hints, a user without one is named."""
    hinted = AUTOCALL_CONTEXT + "\n[phones]\nexten => 101,hint,PJSIP/101&Custom:pbxsync-101\n"
    instance = asterisk_factory(extensions=hinted, ami_read="call,system", ami_write="originate,call,reporting")
    config = parse_config({
        "exchange": {"username": "svc@example.com"},
        "pbx": {"host": instance.host, "port": instance.port, "username": instance.user, "secret": instance.secret},
        "presence": {"enabled": True},
        "users": [{"extension": "101", "email": "alice@example.com"}, {"extension": "102", "email": "bob@example.com"}],
    })
    found = by_name(await check_ami(config, within=10))
    setvar = found["presence: ami setvar"]
    assert setvar.outcome is Outcome.PASS and "No variable specified" in setvar.detail, setvar.line()
    hints = found["presence: blf hints"]
    assert hints.outcome is Outcome.WARN, hints.line()
    assert "1 of 2 presence user(s)" in hints.detail and hints.detail.endswith(": 102")
    assert "exten => 102,hint,PJSIP/102&Custom:pbxsync-102" in hints.fix
