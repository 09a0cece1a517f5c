"""What `pip install .` gives: one top-level package, `pbxsync`, whose demo and dialplan work from any directory.

The wheel is built from this checkout and installed into a fresh venv; its dependencies come from the test
venv through a .pth line (the wheel is installed with --no-deps, so nothing but the wheel is new). Every
command runs from an empty directory, so nothing can be found beside the package by accident.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIME_BOUND_SECONDS = 150  # the AUTOCALL meeting starts ~30 s in; a hung demo must not hang CI


@dataclass(frozen=True)
class Installed:
    wheel: Path
    python: Path
    pbxsync: Path
    empty_dir: Path

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.pbxsync), *args], cwd=self.empty_dir, capture_output=True, text=True,
                              timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(base / "dist"),
                    str(ROOT)], check=True, timeout=300)
    wheel = next((base / "dist").glob("pbxsync-*.whl"))
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    python = base / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=120)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The test venv's libraries, not its pbxsync: a path line in a .pth does not run the .pth files there
    # (the editable install's link tree is only reachable through one of those).
    Path(site, "test-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    empty = base / "empty"
    empty.mkdir()
    yield Installed(wheel, python, base / "venv" / "bin" / "pbxsync", empty)


def test_only_pbxsync_is_installed_at_the_top(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    tops = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"pbxsync"}
    assert "pbxsync/sync/py.typed" in names and "pbxsync/plugin/py.typed" in names
    assert "pbxsync/dialplan/pbxsync-agi.conf" in names and "pbxsync/examples/demo-mailboxes.json" in names
    assert "pbxsync/sync/store/migrations/0001_core.sql" in names
    where = subprocess.run([str(installed.python), "-c", "import pbxsync.plugin, json; "
                            "print(json.dumps(list(pbxsync.plugin.__path__)))"],
                           cwd=installed.empty_dir, capture_output=True, text=True, check=True).stdout
    assert all("/venv/" in path for path in json.loads(where)), where
    for bare in ("sync", "plugin"):
        missing = subprocess.run([str(installed.python), "-c", f"import {bare}"], cwd=installed.empty_dir,
                                 capture_output=True, text=True, check=False)
        assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr


def test_the_version_comes_from_the_package_metadata(installed: Installed) -> None:
    done = installed.run("--version")
    assert done.returncode == 0
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert declared and done.stdout.strip() == f"pbxsync {declared.group(1)}"


def test_dialplan_from_the_installed_package_includes_fastagi(installed: Installed) -> None:
    config = installed.empty_dir / "pbxsync.toml"
    config.write_text('database = "pbxsync.db"\n[exchange]\nusername = "svc"\n', encoding="utf-8")
    done = installed.run("-c", str(config), "dialplan")
    config.unlink()
    assert done.returncode == 0, done.stderr
    for name in ("pbxsync-autocall.conf", "pbxsync-confbridge.conf", "pbxsync-manager.conf", "pbxsync-agi.conf"):
        assert f";; ===== {name} =====" in done.stdout
        assert done.stdout.count(f";; ===== {name} =====") == 1
    assert "[pbxsync-callerid]" in done.stdout and "[pbxsync-room]" in done.stdout
    assert (ROOT / "dialplan" / "pbxsync-agi.conf").read_text(encoding="utf-8") in done.stdout


def test_demo_prints_the_timeline_and_exits_0(installed: Installed) -> None:
    """`pbxsync demo` (what `make demo` runs), from the installed wheel in an empty directory."""
    done = installed.run("demo", timeout=DEMO_TIME_BOUND_SECONDS)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    assert list(installed.empty_dir.iterdir()) == []  # the demo leaves nothing in the working directory
    # Users and contacts synced
    assert re.search(r"101 alice@example\.com: contacts \+2, calendar \+\d+ occurrences", out)
    assert "ok: users synced (3 users" in out
    # Bookings made and rejected, with the reasons
    assert re.search(r"scheduled 'Demo: conference call in a few seconds' .* room 8001 AUTOCALL: "
                     r"101 \(host\), 102, 103", out)
    assert "rejected  'Vendor pitch'" in out and "sales@vendor.example is not a PBX user" in out
    assert "not a PBX user, not added: dana@partner.example" in out
    # Each AUTOCALL call and its outcome: the busy phone is retried, nobody is called twice otherwise
    assert "call 101 (Alice Example), attempt 1: answered" in out
    assert "call 102 (Bob Builder), attempt 1: answered" in out
    assert "call 103 (Carol Jürgens), attempt 1: busy" in out
    assert "call 103 (Carol Jürgens), attempt 2: busy" in out
    assert "attempt 2: answered" not in out
    assert "101 (Alice Example) joined room 8001 as host" in out
    assert "102 (Bob Builder) joined room 8001 as guest" in out
    # Progress while waiting for the start
    assert "... waiting for the start:" in out
    # The LDAP phonebook and the caller-ID lookup
    assert "Zoë Müller: +49 30 1234-4711" in out
    assert 'agent -> Asterisk: SET VARIABLE CALLERID(name) "Zoë Müller"' in out
    # This round's parts (plugin/demo_more.py): write-back, notices, XML phonebook, presence
    assert "Dial-in: +49 30 1234567" in out and "Then key in the room number 8001 followed by #" in out
    assert "ok: write-back: Join-by-phone block in the meeting" in out
    assert "rejected  'Roadmap review'" in out and "no other room in [pbx] rooms is free" in out
    assert "To: bob@example.com" in out and 'Subject: No PBX conference for "Roadmap review"' in out
    assert "ok: notice to the PBX organizer, none for the outside one (1 to bob@example.com, 0 about" in out
    assert "HTTP 304: the phone keeps its copy" in out and "ok: XML phonebook: Yealink book, then 304" in out
    assert "before the start: Custom:pbxsync-101 NOT_INUSE" in out and "now: Custom:pbxsync-101 BUSY" in out
    assert 'agent -> Asterisk: SET VARIABLE PBXSYNC_BUSY "1"' in out
    assert len(re.findall(r"^\[\+ *[\d.]+s\] ok: ", out, re.MULTILINE)) >= 10  # the 6 steps before, these 4
    assert re.search(r"demo passed: \d+ steps ok", out)
    # It ends with the portal's URL and a demo login
    assert "ok: portal: the admin signs in and sees the AUTOCALL outcomes chart" in out
    assert re.search(r"Portal: http://127\.0\.0\.1:\d+/\n.*sign in as 101 with password 'demo-admin'", out)
    assert "FAILED" not in out
