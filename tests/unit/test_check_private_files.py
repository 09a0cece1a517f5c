"""`pbxsync check` warns about config, secret and database files others can read, and fails on a daemon
that reports a sick part (issue 14)."""

from __future__ import annotations

from pathlib import Path

from pbxsync.plugin.check.local import check_private_files
from pbxsync.plugin.check.runner import daemon_result
from pbxsync.plugin.commands.check import report
from pbxsync.sync.config import load_config
from pbxsync.sync.preflight import Outcome


def write_config(tmp_path: Path, config_mode: int, secret_mode: int) -> Path:
    secret = tmp_path / "exchange.secret"
    secret.write_text("pw\n")
    secret.chmod(secret_mode)
    config = tmp_path / "pbxsync.toml"
    config.write_text(f'database = "{tmp_path / "p.db"}"\n[exchange]\nusername = "svc@example.com"\n'
                      f'password_file = "{secret}"\n')
    config.chmod(config_mode)
    return config


def test_files_others_can_read_are_warned_about(tmp_path: Path) -> None:
    config = load_config(str(write_config(tmp_path, 0o644, 0o604)))
    results = {r.name.split(" ")[1]: r for r in check_private_files(config)}
    assert results["config"].outcome is Outcome.WARN and "mode 0644" in results["config"].detail
    assert results["secret"].outcome is Outcome.WARN and "exchange.secret" in results["secret"].name
    assert "chmod o-rwx" in results["secret"].line()
    assert report(list(results.values()), as_json=False) == 0  # a warning, not a failure


def test_private_files_pass(tmp_path: Path) -> None:
    config = load_config(str(write_config(tmp_path, 0o640, 0o600)))
    assert [r.outcome for r in check_private_files(config)] == [Outcome.PASS, Outcome.PASS]


def test_a_sick_part_of_the_running_daemon_fails_the_check() -> None:
    doc = {"pid": 7, "ok": False, "store": {"ok": False, "integrity": "Page 370: free space corruption"},
           "services": [{"name": "sync", "ok": False, "detail": "after-sync step failed: bookings"},
                        {"name": "control", "ok": True, "detail": "listening"}]}
    result = daemon_result(doc)
    assert result.outcome is Outcome.FAIL
    assert "database: Page 370" in result.detail and "sync: after-sync step failed" in result.detail
    healthy = daemon_result({"pid": 7, "ok": True, "store": {"ok": True}, "services": []})
    assert healthy.outcome is Outcome.PASS
