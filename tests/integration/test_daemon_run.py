"""`pbxsync run` as a real process: status over the control endpoint, SIGHUP reload (bad and good config),
SIGTERM exits 0, and the CLI `status` / `check` commands against it and against the simulators; `--debug`
ends without a logging error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from pbxsync.plugin.ami.simulator import AsteriskSimulator
from pbxsync.sync.simulator.ews_server import EwsSimulator
from tests.support.ports import port_for_config, refused_port

ROOT = Path(__file__).resolve().parents[2]


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "control.token"
    path.write_text("run-test-token\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def config_text(tmp_path: Path, ews: EwsSimulator, ami_port: int, control: int, interval: int = 0) -> str:
    return f"""
database = "{tmp_path / 'pbxsync.db'}"
[exchange]
server = "{ews.ews_url}"
auth = "basic"
username = "svc-pbx@example.com"
password = "svc-pw"
[sync]
interval_minutes = {interval}
[[users]]
extension = "101"
email = "alice@example.com"
[[users]]
extension = "102"
email = "bob@example.com"
[pbx]
port = {ami_port}
secret = "ami-secret"
[agi]
listen = "127.0.0.1:0"
[ldap]
listen = "127.0.0.1:0"
[control]
socket = ""
listen = "127.0.0.1:{control}"
token_file = "{token_file(tmp_path)}"
metrics_listen = "127.0.0.1:0"
"""


async def cli(*args: str, config: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbxsync.plugin.cli", "--config", str(config), *args, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_for(predicate: object, log: Path, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():  # type: ignore[operator]
        assert loop.time() < deadline, log.read_text()[-3000:]
        await asyncio.sleep(0.05)


async def test_run_status_reload_and_stop(tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator) -> None:
    control = port_for_config()  # the CLI below finds the daemon through it
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews, ami.port, control), encoding="utf-8")
    code, out, err = await cli("status", config=config)
    assert code == 2 and out == ""
    assert err.strip() == (f"pbxsync: no pbxsync daemon is running (nothing answers on control.listen "
                           f"127.0.0.1:{control}); start it with `systemctl start pbxsync` or `pbxsync run`")
    log = tmp_path / "agent.log"
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbxsync.plugin.cli", "--config", str(config), "--log-format", "json", "run",
            cwd=ROOT,
            stdout=sink, stderr=sink)
    cli_config = tmp_path / "cli.toml"  # the CLI keeps a valid copy while the daemon's file is broken
    cli_config.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    try:
        async def healthy() -> bool:
            code, out, _ = await cli("status", "--json", config=cli_config)
            return code == 0 and json.loads(out)["ok"]

        await wait_for(healthy, log)
        code, out, _ = await cli("status", "--json", config=cli_config)
        doc = json.loads(out)
        assert {s["name"] for s in doc["services"]} == {"control", "metrics", "sync", "ami", "autocall", "agi",
                                                        "ldap"}
        code, out, _ = await cli("status", config=cli_config)
        assert code == 0 and "healthy" in out.splitlines()[0]
        assert any(line.startswith("ami ") and "logged in to 127.0.0.1" in line for line in out.splitlines())

        # SIGHUP with a broken config: one line logged, the old config keeps running.
        good = config.read_text(encoding="utf-8")
        config.write_text(good.replace("interval_minutes = 0", "interval_minutes = -5"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)

        async def reload_failed() -> bool:
            return "config reload failed, keeping the running config" in log.read_text(encoding="utf-8")

        await wait_for(reload_failed, log)
        assert await healthy()
        lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.startswith("{")]
        failed = [x for x in lines if "reload failed" in x["msg"]]
        assert len(failed) == 1 and "sync.interval_minutes" in failed[0]["msg"] and failed[0]["level"] == "error"

        # SIGHUP with a good, changed config: only the sync service restarts.
        config.write_text(good.replace("interval_minutes = 0", "interval_minutes = 30"), encoding="utf-8")
        proc.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            return "config reloaded; services changed: ~sync" in log.read_text(encoding="utf-8")

        await wait_for(reloaded, log)
        await wait_for(healthy, log)
        code, out, _ = await cli("status", "--json", config=cli_config)
        sync = next(s for s in json.loads(out)["services"] if s["name"] == "sync")
        assert sync["data"]["interval_minutes"] == 30
        assert "ami-secret" not in log.read_text(encoding="utf-8") and "svc-pw" not in log.read_text(encoding="utf-8")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert '"msg": "stopped"' in log.read_text(encoding="utf-8")


async def test_cli_check_passes_against_the_simulators_and_names_the_fix_for_a_stopped_ami(
        tmp_path: Path, ews: EwsSimulator, ami: AsteriskSimulator) -> None:
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews, ami.port, 0), encoding="utf-8")
    config.chmod(0o640)  # as installed (root:pbxsync 0640): a config others can read is a WARN line
    code, out, err = await cli("check", config=config)
    assert code == 0, out + err
    assert all(line.startswith("PASS") for line in out.splitlines()[:-1]), out
    assert out.splitlines()[-1].endswith("checks passed")

    with refused_port() as stopped:
        config.write_text(config_text(tmp_path, ews, stopped, 0), encoding="utf-8")
        code, out, err = await cli("check", config=config)
        assert code == 1
        login = next(line for line in out.splitlines() if "ami login" in line)
        assert login.startswith(f"FAIL  ami login: cannot reach the AMI at 127.0.0.1:{stopped}")
        assert "-- fix: start Asterisk, and enable its manager interface in /etc/asterisk/manager.conf" in login
        code, out, err = await cli("check", "--json", config=config)
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert {c["name"] for c in doc["checks"] if c["outcome"] == "SKIP"} >= {"ami permission originate"}
    assert os.path.exists(tmp_path) and "Traceback" not in err


async def test_debug_ends_without_a_logging_error(tmp_path: Path, ews: EwsSimulator,
                                                  ami: AsteriskSimulator) -> None:
    """What libraries log while the interpreter shuts down (exchangelib closes its sessions from `__del__`)
    never turns into a "--- Logging error ---" traceback on stderr."""
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews, ami.port, 0), encoding="utf-8")
    code, _, err = await cli("--debug", "sync", "--local", config=config)
    assert code == 0, err[-3000:]
    assert "DEBUG" in err and "exchangelib" in err  # --debug did log the libraries
    assert "Logging error" not in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
