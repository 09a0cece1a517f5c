"""Secrets: `_file` takes the first line (issue 14)."""

from __future__ import annotations

from pathlib import Path

from pbxsync.sync.secrets import read_secret


def test_a_secret_file_gives_its_first_line_only(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("hunter2\r\n# rotated 2026-11-01 by ops\n", encoding="utf-8")
    assert read_secret("_file", str(path), "exchange.password").reveal() == "hunter2"
    path.write_text("", encoding="utf-8")
    assert read_secret("_file", str(path), "exchange.password").reveal() == ""
