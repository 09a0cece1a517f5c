"""pyproject.toml lists every package folder: setuptools installs only the packages it names, so a new
sub-folder left out of `packages` would be missing from the wheel while the editable install still
finds it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_packages_list_is_the_tree_of_the_mapped_folders() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    in_tree = set()
    for package, folder in setuptools["package-dir"].items():
        top = ROOT / folder
        in_tree.add(package)
        for sub in top.rglob("*"):
            if sub.is_dir() and sub.name != "__pycache__" and "__pycache__" not in sub.parts:
                in_tree.add(".".join((package, *sub.relative_to(top).parts)))
    assert set(setuptools["packages"]) == in_tree
