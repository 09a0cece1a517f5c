"""The repository's own text tells the truth: every repository path a file mentions exists, and no file
names a path that exists only on one machine."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where paths get written: the docs, the shipped config, dialplan and unit, the build and CI files, and the
# sources' docstrings, comments and strings.
TEXT_FILES = sorted({
    ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml",
    *ROOT.glob(".ci/*"), *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*"), *ROOT.glob("dialplan/*"),
    *ROOT.glob("scripts/*"),
    *(path for folder in ("sync", "plugin", "tests", "benchmarks") for path in (ROOT / folder).rglob("*.py")),
})
TOP_FOLDERS = ("docs", "examples", "dialplan", "scripts", "tests", "benchmarks", "sync", "plugin")
# A top folder at the start of a path (not inside a URL or another path), then the rest of the path.
REPO_PATH = re.compile(r"(?<![\w./-])(?:" + "|".join(TOP_FOLDERS) + r")/[\w.*<>/-]*")
# Home and work folders of one machine (an example path names /etc, /var, /opt or a placeholder instead).
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root)/")


def lines() -> list[tuple[str, int, str]]:
    return [(str(path.relative_to(ROOT)), number, line) for path in TEXT_FILES
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]


def exists(path: str) -> bool:
    if "*" in path:  # a pattern (`benchmarks/bench_*.py`) must match something
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def test_the_scan_sees_the_docs_the_config_and_the_sources() -> None:
    names = {str(path.relative_to(ROOT)) for path in TEXT_FILES}
    assert {"README.md", "examples/pbxsync.toml", "dialplan/pbxsync-agi.conf", "plugin/cli.py"} <= names
    assert any(name.startswith("docs/") for name in names) and any(name.startswith("tests/") for name in names)


def test_every_repository_path_a_file_mentions_exists() -> None:
    missing = []
    for name, number, line in lines():
        for found in REPO_PATH.finditer(line):
            path = found.group().rstrip(".-/")
            if "<" in path:  # a placeholder (`bench_<name>.py`), not a path
                continue
            if not exists(path):
                missing.append(f"{name}:{number}: {path}")
    assert missing == []


def test_no_file_names_a_path_of_one_machine() -> None:
    found = [f"{name}:{number}: {line.strip()}" for name, number, line in lines() if MACHINE_PATH.search(line)]
    assert found == []
