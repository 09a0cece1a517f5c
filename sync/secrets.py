"""Secrets given inline, as a file, an environment variable or a command's output.

A `Secret` never shows its value in repr/str, so it cannot leak into a log line or an error message.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pbxsync.sync.errors import SecretError

SECRET_SOURCES = ("", "_file", "_env", "_command")
_COMMAND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, repr=False)
class Secret:
    value: str
    origin: str = "inline"  # where it came from, safe to print: "file /etc/x", "env X", "command"

    def reveal(self) -> str:
        return self.value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __repr__(self) -> str:
        return f"Secret(<hidden>, from {self.origin})"

    __str__ = __repr__


EMPTY_SECRET = Secret("", "unset")


def read_secret(kind: str, spec: str, key: str) -> Secret:
    """Resolve one secret; `kind` is one of SECRET_SOURCES, `key` names the config key for errors."""
    if kind == "":
        return Secret(spec, "inline")
    if kind == "_file":
        try:
            text = Path(spec).read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"{key}_file: cannot read {spec}: {exc.strerror or exc}") from None
        # The first line, as documented: an editor's trailing newline or a comment below is not the secret.
        lines = text.splitlines()
        return Secret(lines[0] if lines else "", f"file {spec}")
    if kind == "_env":
        if spec not in os.environ:
            raise SecretError(f"{key}_env: environment variable {spec} is not set")
        return Secret(os.environ[spec], f"env {spec}")
    if kind == "_command":
        try:
            done = subprocess.run(
                shlex.split(spec), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            raise SecretError(f"{key}_command: could not run it: {type(exc).__name__}") from None
        if done.returncode != 0:
            raise SecretError(f"{key}_command: exited with status {done.returncode}")
        return Secret(done.stdout.rstrip("\r\n"), "command")
    raise SecretError(f"{key}: unknown secret source {kind!r}")
