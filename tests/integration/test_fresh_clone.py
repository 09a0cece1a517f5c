"""The repository is self-contained: a `git clone` of this checkout into an empty folder, with nothing
beside it (no ../shared/), collects every test, the same ones as the checkout itself when nothing is
uncommitted. The clone's tests run with this venv's python and its installed pbxsync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def collect(folder: Path) -> list[str]:
    """The test ids `pytest --collect-only` finds in a folder, asserting it ran without errors."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=folder, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    summary = [line for line in done.stdout.splitlines() if " collected" in line]  # "645 tests collected in 5s"
    assert summary and summary[-1].startswith(f"{len(ids)} tests collected"), output[-4000:]
    assert "error" not in summary[-1], output[-4000:]  # a collection error adds ", 1 error"
    return ids


def uncommitted() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_a_fresh_clone_collects_every_test(tmp_path: Path) -> None:
    # CI and `make test` run from a clone; anything else must not pass this test by skipping it.
    assert (ROOT / ".git").exists(), f"{ROOT} is not a git checkout: the fresh-clone check cannot run"
    clone = tmp_path / "pbxsync"  # tmp_path is new and empty: nothing lies beside the clone
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True,
                   capture_output=True, timeout=300)
    fresh = collect(clone)
    assert len(fresh) > 600
    if not uncommitted():
        assert fresh == collect(ROOT)
