"""examples/pbxsync.toml loads, is valid, and mentions every key sync/config.py knows."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from pbxsync.sync.config import Config, load_config
from pbxsync.sync.config_tables import is_key
from pbxsync.sync.secrets import SECRET_SOURCES, Secret

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pbxsync.toml"
_KEY = re.compile(r"^#?\s*([a-z][a-z0-9_]*)\s*=")
_HEADER = re.compile(r"^\[\[?([a-z_]+)\]\]?\s*$")


def keys_by_section(text: str) -> dict[str, set[str]]:
    """Keys set or shown commented out, per table ("" = top level)."""
    found: dict[str, set[str]] = {"": set()}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        header = _HEADER.match(line)
        if header:
            section = header.group(1)
            found.setdefault(section, set())
            continue
        key = _KEY.match(line)
        if key:
            found[section].add(key.group(1))
    return found


def expected_keys() -> dict[str, dict[str, bool]]:
    """{section: {key: is_secret}} from the Config dataclasses."""
    wanted: dict[str, dict[str, bool]] = {"": {}}
    hints = get_type_hints(Config)
    for f in fields(Config):
        if not is_key(f):  # `path`: set by the loader
            continue
        hint = hints[f.name]
        inner = get_args(hint)[0] if get_args(hint) else hint  # list[UserConfig] -> UserConfig
        if is_dataclass(inner):
            section_hints = get_type_hints(inner)
            wanted[f.name] = {g.name: section_hints[g.name] is Secret for g in fields(inner) if is_key(g)}
        else:
            wanted[""][f.name] = hint is Secret
    return wanted


def test_the_example_loads_and_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBXSYNC_EXCHANGE_PASSWORD", "x-example")
    monkeypatch.setenv("PBXSYNC_AMI_SECRET", "y-example")
    cfg = load_config(str(EXAMPLE))
    assert [u.extension for u in cfg.users] == ["101", "102"]
    assert cfg.exchange.password.reveal() == "x-example"
    assert cfg.pbx.secret.reveal() == "y-example"
    assert cfg.database == "/var/lib/pbxsync/pbxsync.db"


def test_every_config_key_is_documented_in_the_example() -> None:
    documented = keys_by_section(EXAMPLE.read_text(encoding="utf-8"))
    missing: list[str] = []
    for section, keys in expected_keys().items():
        have = documented.get(section, set())
        for key, is_secret in keys.items():
            forms = {key + s for s in SECRET_SOURCES} if is_secret else {key}
            if not forms & have:
                missing.append(f"{section}.{key}" if section else key)
    assert missing == [], f"add these keys to examples/pbxsync.toml: {missing}"


def test_commented_defaults_match_the_code() -> None:
    """A `# key = value` line shows the default: it must be what the code uses."""
    import tomllib

    text = EXAMPLE.read_text(encoding="utf-8")
    defaults = Config()
    section = ""
    checked = 0
    for raw in text.splitlines():
        line = raw.strip()
        header = _HEADER.match(line)
        if header:
            section = header.group(1)
            continue
        if not line.startswith("# ") or not _KEY.match(line) or section == "users":
            continue
        body = line[2:]
        try:
            parsed = tomllib.loads(body)
        except tomllib.TOMLDecodeError:
            continue
        ((key, value),) = parsed.items()
        owner = getattr(defaults, section) if section else defaults
        if not hasattr(owner, key):
            continue  # a secret form (password_file = ...) or an example, not a default
        default = getattr(owner, key)
        if isinstance(default, Secret) or (not isinstance(default, type(value)) and not (
                isinstance(default, float) and isinstance(value, int))):
            continue
        if section in ("exchange", "ldap") and key in ("tenant_id", "client_id", "bind_dn"):
            continue
        assert value == default, f"[{section}] {key}: example says {value!r}, code default is {default!r}"
        checked += 1
    assert checked > 30


def test_the_systemd_unit_is_hardened_and_reloads_with_sighup() -> None:
    unit = (EXAMPLE.parent / "pbxsync.service").read_text(encoding="utf-8")
    lines = {line.strip() for line in unit.splitlines() if line.strip() and not line.startswith("#")}
    for wanted in ("User=pbxsync", "StateDirectory=pbxsync", "ProtectSystem=strict", "ProtectHome=yes",
                   "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                   "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
                   "ReadWritePaths=/var/lib/pbxsync", "ExecReload=/bin/kill -HUP $MAINPID",
                   "ExecStart=/usr/local/bin/pbxsync run"):
        assert wanted in lines, wanted
