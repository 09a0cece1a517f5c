"""`pbxsync check` against the simulators: all pass; a stopped AMI, a missing permission, a refused
mailbox and a taken port each fail with a line that names the fix."""

from __future__ import annotations

import argparse
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxsync.plugin.ami.simulator import ALL_CLASSES, AsteriskSimulator, SimUser
from pbxsync.plugin.check.exchange import check_exchange
from pbxsync.plugin.check.runner import run_checks
from pbxsync.plugin.commands import check as check_cmd
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.preflight import Outcome
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Fault, Organisation
from pbxsync.sync.sources.ews import EwsSource
from tests.support.ports import refused_port

DATA = Path(__file__).resolve().parents[1] / "data" / "mailboxes.json"


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "control.token"
    path.write_text("preflight-token\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def make_config(tmp_path: Path, ews: EwsSimulator, ami_port: int, *, ldap_port: int = 0, **pbx: object) -> Config:
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"server": ews.ews_url, "auth": "basic", "username": "svc-pbx@example.com",
                     "password": "svc-pw"},
        "users": [{"extension": "101", "email": "alice@example.com"},
                  {"extension": "102", "email": "bob@example.com"}],
        "pbx": {"host": "127.0.0.1", "port": ami_port, "username": "pbxsync", "secret": "ami-secret", **pbx},
        "agi": {"listen": "127.0.0.1:0"},
        "ldap": {"listen": f"127.0.0.1:{ldap_port}"},
        "control": {"listen": "127.0.0.1:0", "token_file": str(token_file(tmp_path)),
                    "socket": str(tmp_path / "control.sock"), "metrics_listen": "127.0.0.1:0"},
    }, str(tmp_path / "pbxsync.toml"))


def ews_source(config: Config) -> EwsSource:
    return EwsSource(config.exchange, config.users, config.sync.default_region)


def by_name(results: list) -> dict[str, object]:  # type: ignore[type-arg]
    return {r.name: r for r in results}


async def test_everything_passes_against_the_simulators(tmp_path: Path, ews: EwsSimulator,
                                                        ami: AsteriskSimulator) -> None:
    results = await run_checks(make_config(tmp_path, ews, ami.port), ews_source, within=10)
    assert [r.line() for r in results if not r.passed] == []
    names = [r.name for r in results]
    assert names[:3] == ["config", "database", "exchange reachable (EWS)"]
    for expected in ("exchange authentication", "mailbox alice@example.com (101)", "mailbox bob@example.com (102)",
                     "ami login", "ami permission originate", "ami permission call", "ami permission reporting",
                     "ami permission system", "asterisk module app_confbridge",
                     "dialplan context pbxsync-autocall", "port agi.listen", "port ldap.listen",
                     "port control.listen", "port control.metrics_listen"):
        assert expected in names
    # The permission probe for originate dialled nobody: no Channel, so no call could be placed.
    assert all(not o.get("Channel") for o in ami.originates)


async def test_a_stopped_ami_fails_naming_the_fix(tmp_path: Path, ews: EwsSimulator) -> None:
    with refused_port() as stopped:
        results = await run_checks(make_config(tmp_path, ews, stopped), ews_source, within=5)
    found = by_name(results)
    login = found["ami login"]
    assert login.outcome is Outcome.FAIL  # type: ignore[attr-defined]
    line = login.line()  # type: ignore[attr-defined]
    assert "cannot reach the AMI at 127.0.0.1:" in line
    assert "fix: start Asterisk, and enable its manager interface" in line and "enabled = yes" in line
    assert found["ami permission originate"].outcome is Outcome.SKIP  # type: ignore[attr-defined]
    assert found["mailbox alice@example.com (101)"].passed  # type: ignore[attr-defined]


async def test_a_wrong_ami_secret_fails_naming_the_config_keys(tmp_path: Path, ews: EwsSimulator,
                                                               ami: AsteriskSimulator) -> None:
    results = await run_checks(make_config(tmp_path, ews, ami.port, secret="wrong"), ews_source, within=5)
    line = by_name(results)["ami login"].line()  # type: ignore[attr-defined]
    assert line.startswith("FAIL  ami login: 127.0.0.1:") and "refused user 'pbxsync'" in line
    assert "fix: set [pbx] username/secret" in line
    assert "'wrong'" not in line


async def test_a_missing_permission_is_named(tmp_path: Path, ews: EwsSimulator) -> None:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "ami-secret", frozenset({"call"}), frozenset({"call"}))])
    await sim.start()
    try:
        results = await run_checks(make_config(tmp_path, ews, sim.port), ews_source, within=5)
    finally:
        await sim.stop()
    found = by_name(results)
    assert found["ami permission call"].passed  # type: ignore[attr-defined]
    for klass in ("originate", "reporting", "system"):
        line = found[f"ami permission {klass}"].line()  # type: ignore[attr-defined]
        assert line.startswith("FAIL") and f"add '{klass}' to" in line and "[pbxsync] section" in line


async def test_missing_confbridge_module_and_dialplan_context(tmp_path: Path, ews: EwsSimulator) -> None:
    sim = AsteriskSimulator(users=[SimUser("pbxsync", "ami-secret", ALL_CLASSES, ALL_CLASSES)],
                            modules=("chan_pjsip",), dialplan={"default": []})
    await sim.start()
    try:
        results = await run_checks(make_config(tmp_path, ews, sim.port), ews_source, within=5)
    finally:
        await sim.stop()
    found = by_name(results)
    assert "module load app_confbridge.so" in found["asterisk module app_confbridge"].line()  # type: ignore[attr-defined]
    ctx = found["dialplan context pbxsync-autocall"].line()  # type: ignore[attr-defined]
    assert ctx.startswith("FAIL") and "pbxsync dialplan" in ctx and "dialplan reload" in ctx


async def test_a_refused_mailbox_and_bad_credentials(tmp_path: Path, ews: EwsSimulator,
                                                     ami: AsteriskSimulator) -> None:
    ews.org.inject_fault(Fault("access_denied"), mailbox="bob@example.com", times=-1)
    results = await run_checks(make_config(tmp_path, ews, ami.port), ews_source, within=10)
    found = by_name(results)
    assert found["mailbox alice@example.com (101)"].passed  # type: ignore[attr-defined]
    bob = found["mailbox bob@example.com (102)"].line()  # type: ignore[attr-defined]
    assert bob.startswith("FAIL") and "ApplicationImpersonation" in bob
    ews.org.clear_faults()
    cfg = make_config(tmp_path, ews, ami.port)
    cfg = replace(cfg, exchange=replace(cfg.exchange, password=replace(cfg.exchange.password, value="nope")))
    results = await run_checks(cfg, ews_source, within=10)
    auth = by_name(results)["exchange authentication"].line()  # type: ignore[attr-defined]
    assert auth.startswith("FAIL") and "check [exchange] username (svc-pbx@example.com), password" in auth


async def test_autodiscover_line_names_the_ews_url_found(tmp_path: Path, ews: EwsSimulator) -> None:
    with refused_port() as stopped:  # the exchange checks never dial the AMI
        cfg = make_config(tmp_path, ews, stopped)
        cfg = replace(cfg, exchange=replace(cfg.exchange, server="", autodiscover_url=ews.autodiscover_url))
        results = await check_exchange(cfg, ews_source, datetime.now(UTC), within=10)
    line = by_name(results)["exchange autodiscover"].line()  # type: ignore[attr-defined]
    assert line.startswith("PASS") and f"alice@example.com -> {ews.ews_url}" in line


async def test_a_taken_port_and_a_newer_database_fail(tmp_path: Path, ews: EwsSimulator,
                                                      ami: AsteriskSimulator) -> None:
    import sqlite3

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = make_config(tmp_path, ews, ami.port, ldap_port=taken.getsockname()[1])
        db = sqlite3.connect(cfg.database)
        db.execute("PRAGMA user_version = 999")
        db.close()
        results = await run_checks(cfg, ews_source, within=10)
    found = by_name(results)
    assert "newer than this pbxsync understands" in found["database"].line()  # type: ignore[attr-defined]
    port_line = found["port ldap.listen"].line()  # type: ignore[attr-defined]
    assert port_line.startswith("FAIL") and "already in use" in port_line and "set ldap.listen" in port_line


async def test_cli_json_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sync]\ninterval_minutes = -1\n')
    code = await check_cmd.check(argparse.Namespace(config=str(bad), json=True, timeout=5.0))
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["ok"] is False
    assert any("sync.interval_minutes" in c["detail"] for c in doc["checks"])
    assert all(c["outcome"] == "FAIL" and c["fix"] for c in doc["checks"])


def graph_config(tmp_path: Path, sim: object, ami_port: int, secret: str | None = None) -> Config:
    from pbxsync.sync.simulator.graph_server import GraphSimulator

    assert isinstance(sim, GraphSimulator)
    return parse_config({
        "database": str(tmp_path / "pbxsync.db"),
        "exchange": {"backend": "graph", "tenant_id": sim.app.tenant_id, "client_id": sim.app.client_id,
                     "client_secret": secret or sim.app.client_secret, "authority": sim.authority,
                     "graph_endpoint": sim.graph_endpoint, "ca_file": str(sim.tls.ca_file)},
        "users": [{"extension": "101", "email": "alice@example.com"},
                  {"extension": "102", "email": "bob@example.com"}],
        "pbx": {"port": ami_port, "username": "pbxsync", "secret": "ami-secret"},
        "agi": {"enabled": False}, "ldap": {"enabled": False},
        "control": {"socket": str(tmp_path / "control.sock"), "metrics_listen": ""},
    }, str(tmp_path / "pbxsync.toml"))


async def test_graph_backend_checks(tmp_path: Path, ami: AsteriskSimulator) -> None:
    from pbxsync.plugin.daemon.wiring import default_source_factory
    from pbxsync.sync.simulator.graph_server import GraphSimulator

    with GraphSimulator(Organisation.load_file(DATA), tls_dir=tmp_path / "tls") as sim:
        results = await run_checks(graph_config(tmp_path, sim, ami.port), default_source_factory, within=10)
        assert [r.line() for r in results if not r.passed] == []
        names = [r.name for r in results]
        assert "exchange reachable (token endpoint)" in names and "exchange reachable (Graph)" in names
        assert "mailbox bob@example.com (102)" in names
        results = await run_checks(graph_config(tmp_path, sim, ami.port, secret="wrong-secret"),
                                   default_source_factory, within=10)
        auth = by_name(results)["exchange authentication"].line()  # type: ignore[attr-defined]
        assert auth.startswith("FAIL") and "tenant_id, client_id and client_secret" in auth
        assert "wrong-secret" not in auth
