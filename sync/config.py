"""The TOML configuration: one typed tree, validated in one pass that reports every problem.

Each section is a frozen dataclass. The loader walks the dataclass fields, so adding a key means adding
a field with a default; unknown keys are reported (a typo should not silently do nothing). Fields
typed `Secret` accept the key itself or `<key>_file`, `<key>_env`, `<key>_command`.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from pbxsync.sync.errors import ConfigError, SecretError
from pbxsync.sync.secrets import EMPTY_SECRET, SECRET_SOURCES, Secret, read_secret

CONFIG_ENV = "PBXSYNC_CONFIG"
DEFAULT_CONFIG_PATH = "/etc/pbxsync/pbxsync.toml"

_EXTENSION_RE = re.compile(r"^[0-9A-Za-z*#+_-]{1,32}$")
_EMAIL_RE = re.compile(r"^[^@\s;,<>\"']{1,200}@[^@\s;,<>\"']{1,200}$")
_LISTEN_RE = re.compile(r"^(?P<host>[0-9A-Za-z.:\[\]-]+):(?P<port>[0-9]{1,5})$")


@dataclass(frozen=True)
class UserConfig:
    extension: str
    email: list[str]  # the first is the mailbox; others are aliases for matching
    name: str = ""
    room: str = ""
    sync_contacts: bool = True
    sync_calendar: bool = True
    username: str = ""  # per-user credentials when [exchange] impersonation = false
    password: Secret = EMPTY_SECRET
    ldap_password: Secret = EMPTY_SECRET  # lets the user's phone bind as uid=<extension>,<ldap.base_dn>

    @property
    def mailbox(self) -> str:
        return self.email[0]


@dataclass(frozen=True)
class ExchangeConfig:
    backend: str = "ews"  # ews | graph
    server: str = ""  # EWS URL; blank = autodiscover
    auth: str = "ntlm"  # basic | ntlm | oauth2
    username: str = ""
    password: Secret = EMPTY_SECRET
    impersonation: bool = True
    verify_tls: bool = True
    ca_file: str = ""
    version: str = "Exchange2016"  # pinned so exchangelib skips its version probe
    autodiscover_url: str = ""  # where autodiscover GetUserSettings is asked; blank = derive from domain
    max_connections: int = 4  # per account: the semaphore and the HTTP pool are sized to it
    timeout_seconds: float = 60.0
    # Microsoft Graph (app-only OAuth)
    tenant_id: str = ""
    client_id: str = ""
    client_secret: Secret = EMPTY_SECRET
    certificate_file: str = ""
    private_key_file: str = ""
    authority: str = "https://login.microsoftonline.com"
    graph_endpoint: str = "https://graph.microsoft.com/v1.0"


@dataclass(frozen=True)
class SyncConfig:
    interval_minutes: int = 15  # 0 = timer off
    days_back: int = 1
    days_ahead: int = 30
    default_region: str = "DE"  # for numbers without a country code
    concurrency: int = 8  # mailboxes synced at once


@dataclass(frozen=True)
class PbxConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pbxsync"
    secret: Secret = EMPTY_SECRET
    tls: bool = False
    tls_verify: bool = True
    dial: str = "PJSIP/{extension}"
    context: str = "pbxsync-autocall"
    rooms: list[str] = field(default_factory=list)
    action_timeout_seconds: float = 10.0
    ping_interval_seconds: float = 20.0
    md5_login: bool = False  # AMI Challenge/MD5 login: the secret never crosses the wire
    voicemail_directory: bool = False  # merge Asterisk's voicemail users into the directory
    voicemail_refresh_minutes: int = 60


@dataclass(frozen=True)
class AutocallConfig:
    retries: int = 2
    retry_delay_seconds: int = 60
    ring_timeout_seconds: int = 30
    grace_minutes: int = 10  # a start missed while down is still called this long after it
    pacing_per_second: float = 0.0  # 0 = all at once
    confirm: bool = False  # "press 1 to join", so voicemail cannot capture the bridge
    end_conference_on_cancel: bool = False
    # This long before an AUTOCALL meeting starts, its organizer's calendar (else the invitees') is synced
    # once more, so a cancellation made after the last timed pass still stops the calls. 0 = off.
    verify_before_seconds: int = 90


@dataclass(frozen=True)
class ConferenceConfig:
    early_join_minutes: int = 10
    pins: bool = False  # generate a PIN per booking
    open_rooms: list[str] = field(default_factory=list)  # rooms usable outside bookings


@dataclass(frozen=True)
class AgiConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:4573"
    max_connections: int = 200
    idle_timeout_seconds: float = 10.0
    # Mailboxes whose contacts name callers for every user (after the called user's own contacts);
    # empty = every synced mailbox.
    callerid_shared_mailboxes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LdapConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:3890"
    base_dn: str = "ou=pbxsync,dc=example,dc=com"
    anonymous: bool = True
    bind_dn: str = ""
    bind_password: Secret = EMPTY_SECRET
    tls_cert: str = ""
    tls_key: str = ""
    ldaps_listen: str = ""
    size_limit: int = 500
    max_connections: int = 500
    shared_mailboxes: list[str] = field(default_factory=lambda: ["*"])  # "*" = every synced mailbox
    time_limit_seconds: float = 10.0  # server-side cap on one search
    idle_timeout_seconds: float = 300.0  # idle connections are closed
    max_request_bytes: int = 65536  # a larger LDAP message is a protocol error
    refresh_seconds: float = 5.0  # how often the store is checked for changes (0 = only on refresh())


@dataclass(frozen=True)
class ControlConfig:
    listen: str = "127.0.0.1:8459"
    metrics_listen: str = "127.0.0.1:9459"


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "text"  # text | json


@dataclass(frozen=True)
class Config:
    database: str = "/var/lib/pbxsync/pbxsync.db"
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    users: list[UserConfig] = field(default_factory=list)
    pbx: PbxConfig = field(default_factory=PbxConfig)
    autocall: AutocallConfig = field(default_factory=AutocallConfig)
    conference: ConferenceConfig = field(default_factory=ConferenceConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    ldap: LdapConfig = field(default_factory=LdapConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    path: str = ""  # where it was loaded from; not a TOML key

    def user_by_extension(self, extension: str) -> UserConfig | None:
        return next((u for u in self.users if u.extension == extension), None)


_NOT_KEYS = {"path"}
T = TypeVar("T")


def _describe(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


class _Builder:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def build(self, cls: type[T], data: object, path: str) -> T | None:
        if not isinstance(data, dict):
            self.problems.append(f"{path or 'top level'}: expected a table, got {_describe(data)}")
            return None
        hints = get_type_hints(cls)
        known: set[str] = set()
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in _NOT_KEYS:
                continue
            key = f"{path}.{f.name}" if path else f.name
            hint = hints[f.name]
            if hint is Secret:
                known.update(f.name + s for s in SECRET_SOURCES)
                secret = self._secret(data, f.name, key)
                if secret is not None:
                    values[f.name] = secret
                continue
            known.add(f.name)
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    self.problems.append(f"{key}: required")
                continue
            converted = self._convert(hint, data[f.name], key)
            if converted is not _INVALID:
                values[f.name] = converted
        for extra in sorted(set(data) - known):
            where = f"{path}.{extra}" if path else extra
            self.problems.append(f"{where}: unknown key")
        try:
            return cls(**values)
        except TypeError:
            return None  # a required field was missing; already reported

    def _secret(self, data: dict[str, Any], name: str, key: str) -> Secret | None:
        given = [s for s in SECRET_SOURCES if name + s in data]
        if not given:
            return None
        if len(given) > 1:
            self.problems.append(f"{key}: give only one of " + ", ".join(name + s for s in given))
            return None
        spec = data[name + given[0]]
        if not isinstance(spec, str):
            self.problems.append(f"{key}{given[0]}: expected a string, got {_describe(spec)}")
            return None
        try:
            return read_secret(given[0], spec, key)
        except SecretError as exc:
            self.problems.append(str(exc))
            return None

    def _convert(self, hint: Any, value: object, key: str) -> Any:
        origin = get_origin(hint)
        if is_dataclass(hint) and isinstance(hint, type):
            built = self.build(hint, value, key)
            return _INVALID if built is None else built
        if origin is list:
            (item_hint,) = get_args(hint)
            if not isinstance(value, list):
                if item_hint is str and isinstance(value, str):
                    return [value]  # `email = "a@b"` is a one-element list
                self.problems.append(f"{key}: expected a list, got {_describe(value)}")
                return _INVALID
            items = [self._convert(item_hint, v, f"{key}[{i}]") for i, v in enumerate(value)]
            return _INVALID if any(i is _INVALID for i in items) else items
        if origin in (types.UnionType, typing.Union):
            return self._convert(next(a for a in get_args(hint) if a is not type(None)), value, key)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint in (str, int, bool, float) and (type(value) is not hint):
            self.problems.append(f"{key}: expected {_describe(hint())}, got {_describe(value)}")
            return _INVALID
        return value


_INVALID = object()


def _check_listen(problems: list[str], key: str, value: str, allow_empty: bool = False) -> None:
    if allow_empty and not value:
        return
    m = _LISTEN_RE.match(value)
    if not m or not 0 <= int(m["port"]) <= 65535:
        problems.append(f"{key}: expected HOST:PORT, got {value!r}")


def _semantic_problems(cfg: Config) -> list[str]:
    p: list[str] = []
    ex = cfg.exchange
    if ex.backend not in ("ews", "graph"):
        p.append(f"exchange.backend: must be \"ews\" or \"graph\", got {ex.backend!r}")
    if ex.auth not in ("basic", "ntlm", "oauth2"):
        p.append(f"exchange.auth: must be basic, ntlm or oauth2, got {ex.auth!r}")
    if ex.server and not ex.server.startswith(("https://", "http://")):
        p.append("exchange.server: must be an http(s) URL of the EWS endpoint, or blank for autodiscover")
    if ex.backend == "ews" and ex.impersonation and not ex.username:
        p.append("exchange.username: required for impersonation (the service account)")
    if ex.backend == "graph":
        if not ex.tenant_id:
            p.append("exchange.tenant_id: required for backend = \"graph\"")
        if not ex.client_id:
            p.append("exchange.client_id: required for backend = \"graph\"")
        if not ex.client_secret and not (ex.certificate_file and ex.private_key_file):
            p.append("exchange.client_secret: required for backend = \"graph\" "
                     "(or certificate_file and private_key_file)")
    if ex.max_connections < 1:
        p.append("exchange.max_connections: must be at least 1")
    if cfg.sync.interval_minutes < 0:
        p.append("sync.interval_minutes: must be 0 (off) or more")
    if cfg.sync.days_back < 0 or cfg.sync.days_ahead < 1:
        p.append("sync.days_back/days_ahead: days_back must be >= 0 and days_ahead >= 1")
    if cfg.sync.concurrency < 1:
        p.append("sync.concurrency: must be at least 1")
    seen_ext: set[str] = set()
    seen_mail: set[str] = set()
    for i, u in enumerate(cfg.users):
        key = f"users[{i}]"
        if not _EXTENSION_RE.match(u.extension):
            p.append(f"{key}.extension: {u.extension!r} is not a dialable extension")
        elif u.extension in seen_ext:
            p.append(f"{key}.extension: {u.extension} is listed twice")
        seen_ext.add(u.extension)
        if not u.email:
            p.append(f"{key}.email: at least one address is required")
        for j, mail in enumerate(u.email):
            if not _EMAIL_RE.match(mail):
                p.append(f"{key}.email[{j}]: {mail!r} is not an e-mail address")
            elif mail.lower() in seen_mail:
                p.append(f"{key}.email[{j}]: {mail} belongs to another user too")
            seen_mail.add(mail.lower())
        if u.room and not _EXTENSION_RE.match(u.room):
            p.append(f"{key}.room: {u.room!r} is not a dialable room number")
        if ex.backend == "ews" and not ex.impersonation and not (u.username and u.password):
            p.append(f"{key}: username and password are required when exchange.impersonation = false")
    for i, room in enumerate(cfg.pbx.rooms):
        if not _EXTENSION_RE.match(room):
            p.append(f"pbx.rooms[{i}]: {room!r} is not a dialable room number")
    if "{extension}" not in cfg.pbx.dial:
        p.append("pbx.dial: must contain {extension}, e.g. \"PJSIP/{extension}\"")
    if cfg.autocall.retries < 0 or cfg.autocall.retry_delay_seconds < 0:
        p.append("autocall.retries/retry_delay_seconds: must not be negative")
    if cfg.autocall.pacing_per_second < 0:
        p.append("autocall.pacing_per_second: must be 0 (off) or more")
    if not 0 <= cfg.autocall.verify_before_seconds <= 3600:
        p.append("autocall.verify_before_seconds: must be between 0 (off) and 3600")
    _check_listen(p, "agi.listen", cfg.agi.listen)
    _check_listen(p, "ldap.listen", cfg.ldap.listen)
    _check_listen(p, "ldap.ldaps_listen", cfg.ldap.ldaps_listen, allow_empty=True)
    _check_listen(p, "control.listen", cfg.control.listen)
    _check_listen(p, "control.metrics_listen", cfg.control.metrics_listen, allow_empty=True)
    if bool(cfg.ldap.tls_cert) != bool(cfg.ldap.tls_key):
        p.append("ldap.tls_cert/tls_key: give both or neither")
    if cfg.ldap.ldaps_listen and not cfg.ldap.tls_cert:
        p.append("ldap.ldaps_listen: needs tls_cert and tls_key")
    if cfg.ldap.size_limit < 0 or cfg.ldap.max_connections < 1 or cfg.ldap.max_request_bytes < 1024:
        p.append("ldap.size_limit/max_connections/max_request_bytes: size_limit >= 0 (0 = none), "
                 "max_connections >= 1, max_request_bytes >= 1024")
    if cfg.ldap.time_limit_seconds < 0 or cfg.ldap.refresh_seconds < 0 or cfg.ldap.idle_timeout_seconds <= 0:
        p.append("ldap.time_limit_seconds/refresh_seconds/idle_timeout_seconds: must not be negative "
                 "(idle_timeout_seconds > 0)")
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        p.append("log.level: must be debug, info, warning or error")
    if cfg.log.format not in ("text", "json"):
        p.append("log.format: must be text or json")
    return p


def parse_config(data: dict[str, Any], source: str = "", base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    builder = _Builder()
    cfg = builder.build(Config, data, "")
    problems = builder.problems
    if cfg is not None:  # invalid keys fell back to defaults, so the cross-checks still say something
        problems = problems + [q for q in _semantic_problems(cfg) if q.split(":")[0] not in
                               {b.split(":")[0] for b in problems}]
    if problems or cfg is None:
        raise ConfigError(problems or ["invalid configuration"], source)
    db = Path(cfg.database)
    if base_dir is not None and not db.is_absolute():
        db = base_dir / db  # relative paths are relative to the config file, not the cwd
    return _replace(cfg, database=str(db), path=source)


def _replace(cfg: Config, **changes: Any) -> Config:
    from dataclasses import replace

    return replace(cfg, **changes)


def config_path(explicit: str | None) -> str:
    return explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def load_config(explicit: str | None = None) -> Config:
    path = Path(config_path(explicit))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"config file not found (give --config FILE or set {CONFIG_ENV})"],
                          str(path)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(["not UTF-8 text"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax: {exc}"], str(path)) from None
    return parse_config(data, str(path), path.parent)
