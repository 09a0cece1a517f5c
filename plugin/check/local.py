"""Checks on this machine: the database file, who may read the config and secret files, and the ports
the daemon will listen on."""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

from pbxsync.sync.config import Config
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.preflight import CheckResult, failed, passed, warned
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import latest_version


def secret_files(config: object) -> list[str]:
    """Every file a `_file` secret of the config was read from."""
    found: list[str] = []
    stack: list[object] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, Secret):
            if node.origin.startswith("file "):
                found.append(node.origin.removeprefix("file "))
        elif is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in fields(node))
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return sorted(set(found))


def check_private_files(config: Config) -> list[CheckResult]:
    """The config, the secret files and the database must not be readable by other users."""
    results: list[CheckResult] = []
    wanted = [("config", config.path)] + [("secret file", path) for path in secret_files(config)]
    wanted.append(("database file", config.database))
    for kind, path in wanted:
        if not path:
            continue
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            continue  # a missing file is another check's business
        name = f"permissions {kind} {path}"
        if mode & 0o007:
            results.append(warned(name, f"{path} is mode {mode:04o}: every user on this machine can read it",
                                  f"chmod o-rwx {path} (root:pbxsync 0640 for config and secrets, "
                                  "pbxsync 0600 for the database)"))
        else:
            results.append(passed(name, f"{path} is mode {mode:04o}"))
    return results


def check_database(config: Config) -> CheckResult:
    """Read-only: a preflight must not create or migrate the database (the daemon does that)."""
    name = "database"
    path = Path(config.database)
    latest = latest_version()
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if os.access(parent, os.W_OK):
            return passed(name, f"{path} does not exist yet; it is created (schema {latest}) at the first run")
        return failed(name, f"{path} does not exist and {parent} is not writable for this user",
                      f"create {path.parent} owned by the pbxsync user (systemd: StateDirectory=pbxsync), "
                      "or set `database` to a writable path")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return failed(name, f"cannot open {path}: {exc}", "check the file's owner and permissions")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        quick = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return failed(name, f"{path} is not a usable SQLite database: {exc}",
                      "restore it from a backup (see docs/operations.md), or move it away to start afresh")
    finally:
        conn.close()
    if quick != "ok":
        return failed(name, f"{path} is damaged: {quick}", "restore it from a backup (see docs/operations.md)")
    if version > latest:
        return failed(name, f"{path} has schema {version}, newer than this pbxsync understands ({latest})",
                      "install the pbxsync version that wrote it, or restore a backup made before the upgrade")
    if not os.access(path, os.W_OK):
        return failed(name, f"{path} is not writable for this user",
                      "run pbxsync as the owner of the database (the pbxsync service user)")
    if version < latest:
        return passed(name, f"{path} opens; schema {version} is migrated to {latest} automatically at start")
    return passed(name, f"{path} opens; schema {version} is current")


@dataclass(frozen=True)
class Listener:
    """A socket the daemon will bind, and the config key that sets it (for the fix hint)."""

    key: str
    address: ListenAddress


def listeners(config: Config) -> list[Listener]:
    """Every socket the daemon will bind with this config."""
    found = [] if config.control.listen is None else [Listener("control.listen", config.control.listen)]
    if config.control.metrics_listen is not None:
        found.append(Listener("control.metrics_listen", config.control.metrics_listen))
    if config.agi.enabled:
        found.append(Listener("agi.listen", config.agi.listen))
    if config.ldap.enabled:
        found.append(Listener("ldap.listen", config.ldap.listen))
        if config.ldap.ldaps_listen is not None:
            found.append(Listener("ldap.ldaps_listen", config.ldap.ldaps_listen))
    if config.web.enabled:
        found.append(Listener("web.listen", config.web.listen))
    if config.phonebook.listen is not None:
        found.append(Listener("phonebook.listen", config.phonebook.listen))
    return found


def check_port(listener: Listener, daemon_running: bool) -> CheckResult:
    key, listen = listener.key, listener.address
    host, port = listen.host, listen.port
    name = f"port {key}"
    family = socket.AF_INET6 if listen.is_ipv6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                if daemon_running:
                    return passed(name, f"{listen} is in use by the running pbxsync daemon")
                return failed(name, f"{listen} is already in use by another process",
                              f"stop that process (`ss -ltnp 'sport = :{port}'` shows it) or set {key} "
                              "to a free port")
            if exc.errno == errno.EACCES:
                return failed(name, f"{listen}: permission denied (ports below 1024 need privileges)",
                              f"use a port >= 1024 for {key}, or grant CAP_NET_BIND_SERVICE to the service")
            if exc.errno == errno.EADDRNOTAVAIL:
                return failed(name, f"{listen}: {host} is not an address of this machine",
                              f"set {key} to 127.0.0.1:{port} or an address this host has")
            return failed(name, f"{listen}: {exc.strerror or exc}", f"choose another address for {key}")
    return passed(name, f"{listen} is free")


def check_ldap_privacy(config: Config) -> list[CheckResult]:
    """WARN when anonymous LDAP listens beyond loopback and every mailbox is shared: then anyone on the LAN
    reads every synced contact without a password."""
    ldap = config.ldap
    if not (ldap.enabled and ldap.anonymous and any(m.strip() == "*" for m in ldap.shared_mailboxes)):
        return []
    exposed = [a for a in (ldap.listen, ldap.ldaps_listen) if a is not None and not a.is_loopback]
    if not exposed:
        return []
    where = ", ".join(f"{a.host}:{a.port}" for a in exposed)
    return [warned("ldap privacy", f"anonymous LDAP listens on {where} (beyond loopback) and shares every synced "
                   "mailbox: anyone on the LAN reads every contact without a password",
                   "list the address books phones may see in [ldap] shared_mailboxes, or set anonymous = false "
                   "and give phones bind_dn/bind_password")]
