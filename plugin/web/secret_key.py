"""The portal's signing key: read from a file, created (random, mode 0600) when the file is absent.

A key in a file survives restarts, so sessions do too; deleting the file signs everybody out."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pbxsync.sync.config import Config
from pbxsync.sync.errors import ConfigError

KEY_BYTES = 32
DEFAULT_NAME = "web-secret.key"


def key_path(config: Config) -> Path:
    if config.web.secret_key_file:
        return Path(config.web.secret_key_file)
    return Path(config.database).parent / DEFAULT_NAME


def load_or_create_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"web.secret_key_file: cannot read {path}: {exc}"]) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError([f"web.secret_key_file: {path} does not hold a hex key (delete it to make a new one)"]) \
            from None
    if len(key) < KEY_BYTES:
        raise ConfigError([f"web.secret_key_file: {path} holds fewer than {KEY_BYTES} bytes"])
    return key


def _create(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it between our read and our create: use theirs
        return load_or_create_key(path)
    except OSError as exc:
        raise ConfigError([f"web.secret_key_file: cannot create {path}: {exc.strerror or exc}"]) from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key.hex() + "\n").encode("ascii"))
    finally:
        os.close(fd)
    return key
