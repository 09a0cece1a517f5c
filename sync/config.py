"""The TOML configuration: one typed tree, validated in one pass that reports every problem.

Each section is a frozen dataclass; `config_tables.TableBuilder` fills them from the TOML tables, so adding
a key means adding a field with a default (how each field type is read is said there). Here are the keys
and the rules between them. What a backend needs is checked by the backend (sync/sources/registry.py
finds it by name), and so is the table `[exchange.<backend>]` of a backend with options of its own.

Over 400 lines on purpose: every section and the one pass of rules across them; split, the cross-section
rules would have to gather the sections again.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbxsync.sync.config_tables import NOT_A_KEY, TableBuilder
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import EMPTY_SECRET, Secret
from pbxsync.sync.sources.registry import backend_named, backend_names

CONFIG_ENV = "PBXSYNC_CONFIG"
DEFAULT_CONFIG_PATH = "/etc/pbxsync/pbxsync.toml"

# One pattern for extensions and rooms: what AUTOCALL can dial as an extension and join as a room
# (plugin.ami.wire checks both), so the config never promises a call that will be refused. No "_" or "."
# (Asterisk would read a pattern), no "*", "#" or "+" (not a room name); used with fullmatch, so a
# trailing newline does not slip through as it does past "$".
DIALABLE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,31}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")  # of the notice templates: "en", "de", "pt-BR"
_EMAIL_RE = re.compile(r"^[^@\s;,<>\"']{1,200}@[^@\s;,<>\"']{1,200}$")
# Listener defaults: a ListenAddress is frozen, so one instance can be the default of every config.
_DEFAULT_AGI = ListenAddress("127.0.0.1", 4573)
_DEFAULT_LDAP = ListenAddress("127.0.0.1", 3890)
DEFAULT_CONTROL_SOCKET = "/run/pbxsync/control.sock"  # systemd's RuntimeDirectory=pbxsync makes /run/pbxsync
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux; leave room for the NUL
_DEFAULT_METRICS = ListenAddress("127.0.0.1", 9459)
_DEFAULT_GRAPH_NOTIFICATIONS = ListenAddress("127.0.0.1", 8460)


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
    presence: bool = True  # [presence]: this user's calendar sets their device/presence state (False: opt out)
    presence_forward: str = ""  # an extension the presence route dials instead of voicemail while busy
    notices_language: str = ""  # the language of notices to this user; "" = [meetings] notices_language

    @property
    def mailbox(self) -> str:
        return self.email[0]


@dataclass(frozen=True)
class ExchangeConfig:
    backend: str = "ews"  # a name sync/sources/registry.py knows: ews | graph
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
    notifications: str = "auto"  # auto: folders Exchange reports changed are synced at once | off: timers only
    # Microsoft Graph (app-only OAuth)
    tenant_id: str = ""
    client_id: str = ""
    client_secret: Secret = EMPTY_SECRET
    certificate_file: str = ""
    private_key_file: str = ""
    authority: str = "https://login.microsoftonline.com"
    graph_endpoint: str = "https://graph.microsoft.com/v1.0"
    # Graph change notifications: the public HTTPS URL Graph POSTs to (through a reverse proxy) and where
    # the daemon takes those POSTs; blank URL = delta polling every poll_seconds (contacts less often).
    notification_url: str = ""
    notification_listen: ListenAddress = _DEFAULT_GRAPH_NOTIFICATIONS
    poll_seconds: int = 30  # 0 = off
    contacts_poll_seconds: int = 300  # 0 = off
    # The table [exchange.<backend>] parsed into the backend's `options` dataclass; None for ews and graph.
    options: object = field(default=None, metadata=NOT_A_KEY)


@dataclass(frozen=True)
class SyncConfig:
    interval_minutes: int = 15  # 0 = timer off
    fallback_interval_minutes: int = 15  # folders whose notifications fail are synced this often; 0 = off
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
    # Written into meetings with `[meetings] write_back`: the external numbers people dial to reach the rooms,
    # and how the room is chosen after dialling one: "dtmf" (dial the number, then key in room and #) or
    # "direct" (the number is a DID block: the room number dialled right after it reaches the room).
    dial_in_numbers: list[str] = field(default_factory=list)
    dial_in_room: str = "dtmf"


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
    pin_digits: int = 6  # length of new PINs (existing ones keep theirs)
    open_rooms: list[str] = field(default_factory=list)  # rooms usable outside bookings


@dataclass(frozen=True)
class MeetingsConfig:
    max_group_members: int = 200  # an invited group with more people is not expanded (listed as unmatched)
    group_cache_minutes: int = 60  # how long a group's members (or "not a group") are believed
    # Domains whose invited addresses may be groups and are looked up; empty = the PBX users' domains.
    group_domains: list[str] = field(default_factory=list)
    # Rejection notices (plugin/notices): e-mail a PBX-user organizer once per rejected meeting and reason.
    notify_organizer: bool = False
    notices_language: str = "en"  # a language of the templates: "en", "de", or one in notices_templates
    notices_from: str = "organizer"  # "organizer" (their own mailbox sends it) or a mailbox address
    notices_templates: str = ""  # a directory whose templates override the shipped ones ("" = shipped only)
    write_back: bool = False  # write a "Join by phone" block into the organizer's booked meeting
    notify_attendees: bool = True  # EWS: send the update to the attendees (SendToAllAndSaveCopy); false = save only


@dataclass(frozen=True)
class AgiConfig:
    enabled: bool = True
    listen: ListenAddress = _DEFAULT_AGI
    max_connections: int = 200
    idle_timeout_seconds: float = 10.0
    # Mailboxes whose contacts name callers for every user (after the called user's own contacts);
    # unset = the same as [ldap] shared_mailboxes; "*" or [] = every synced mailbox.
    callerid_shared_mailboxes: list[str] | None = None
    allow: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])  # who may speak FastAGI
    max_connections_per_source: int = 200


@dataclass(frozen=True)
class LdapConfig:
    enabled: bool = True
    listen: ListenAddress = _DEFAULT_LDAP
    base_dn: str = "ou=pbxsync,dc=example,dc=com"
    anonymous: bool = False  # phones that need it are allowed in the config, scoped by shared_mailboxes
    bind_dn: str = ""
    bind_password: Secret = EMPTY_SECRET
    tls_cert: str = ""
    tls_key: str = ""
    ldaps_listen: ListenAddress | None = None
    size_limit: int = 500
    max_connections: int = 500
    shared_mailboxes: list[str] = field(default_factory=lambda: ["*"])  # "*" = every synced mailbox
    time_limit_seconds: float = 10.0  # server-side cap on one search
    idle_timeout_seconds: float = 300.0  # idle connections are closed
    max_request_bytes: int = 65536  # a larger LDAP message is a protocol error
    refresh_seconds: float = 5.0  # how often the store is checked for changes (0 = only on refresh())
    max_connections_per_source: int = 50  # open connections from one address
    max_bind_failures: int = 5  # wrong binds before a connection is closed (0 = never)
    max_filter_terms: int = 64  # assertions in one filter; more is refused (adminLimitExceeded)
    max_search_cost: int = 1_000_000  # estimated candidates x assertions; more is refused (unwillingToPerform)


SHOW_AS_NAMES = ("free", "tentative", "busy", "oof", "workingelsewhere", "unknown")  # sync.model.ShowAs


@dataclass(frozen=True)
class PresenceConfig:
    enabled: bool = False
    busy_statuses: list[str] = field(default_factory=lambda: ["busy", "oof"])  # show-as values that count
    message: str = "In a meeting until {until}"  # presence message; {until}: when it ends, local time
    oof_message: str = "Out of office until {until}"
    timezone: str = ""  # IANA zone for {until} and PBXSYNC_BUSY_UNTIL; "" = the host's local zone


@dataclass(frozen=True)
class PhonebookConfig:
    """Vendor XML phonebooks over HTTP (plugin.phonebook); off while `listen` is unset."""

    listen: ListenAddress | None = None
    tls_cert: str = ""  # both set: HTTPS instead of HTTP
    tls_key: str = ""
    dial_prefix: str = ""  # outside-line prefix put before every external number ("0")
    number_format: str = "national"  # national | international | e164: how external numbers are written
    anonymous: bool = False  # no credentials: the shared contacts; false: HTTP Basic or a phone token needed
    refresh_seconds: float = 5.0  # how often the store is checked for changes
    cache_mb: int = 16  # rendered books kept in memory (0 = render every request); counts in the peak RSS


@dataclass(frozen=True)
class ControlConfig:
    socket: str = DEFAULT_CONTROL_SOCKET  # the CLI's way in, guarded by file permissions ("" = off)
    listen: ListenAddress | None = None  # TCP, only with a token ("" / unset = off)
    token: Secret = EMPTY_SECRET  # `token_file`: the Bearer token TCP clients must send
    allow_remote: bool = False  # a control or metrics address beyond loopback is refused unless true
    metrics_listen: ListenAddress | None = _DEFAULT_METRICS  # "" in the file = off


# What `[web] user_settings` may list: the per-user options an employee may change on "My sync".
WEB_USER_SETTINGS = ("sync_contacts", "sync_calendar", "room")
_DEFAULT_WEB = ListenAddress("127.0.0.1", 8480)


@dataclass(frozen=True)
class WebConfig:
    """The web portal (plugin.web); docs/web.md explains sign-in, TLS and the security model."""

    enabled: bool = False
    listen: ListenAddress = _DEFAULT_WEB
    tls_cert: str = ""  # both or neither: HTTPS, and session cookies marked Secure
    tls_key: str = ""
    # Host names (and addresses) the portal answers to; any other Host header is refused (DNS rebinding).
    allowed_hosts: list[str] = field(default_factory=lambda: ["localhost", "127.0.0.1", "::1"])
    admins: list[str] = field(default_factory=list)  # extensions with admin rights
    user_settings: list[str] = field(default_factory=list)  # of WEB_USER_SETTINGS; empty = none
    session_minutes: int = 480
    secret_key_file: str = ""  # signs session cookies; blank = web-secret.key beside the database
    # Reverse proxies (addresses or networks) whose X-Forwarded-For / X-Forwarded-Proto are believed.
    trusted_proxies: list[str] = field(default_factory=list)
    # Click to call: the employee's own phone ([pbx] dial) is rung, then sent here with the contact's number.
    click_to_call_context: str = "from-internal"


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "text"  # text | json


@dataclass(frozen=True)
class Config:
    database: str = "/var/lib/pbxsync/pbxsync.db"
    database_group: str = ""  # created 0640 for this group instead of 0600
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    users: list[UserConfig] = field(default_factory=list)
    pbx: PbxConfig = field(default_factory=PbxConfig)
    autocall: AutocallConfig = field(default_factory=AutocallConfig)
    conference: ConferenceConfig = field(default_factory=ConferenceConfig)
    meetings: MeetingsConfig = field(default_factory=MeetingsConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    ldap: LdapConfig = field(default_factory=LdapConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    phonebook: PhonebookConfig = field(default_factory=PhonebookConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    path: str = field(default="", metadata=NOT_A_KEY)  # where it was loaded from

    def user_by_extension(self, extension: str) -> UserConfig | None:
        return next((u for u in self.users if u.extension == extension), None)


def _one_of(names: list[str]) -> str:
    quoted = [f'"{n}"' for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _semantic_problems(cfg: Config) -> list[str]:
    p: list[str] = []
    ex = cfg.exchange
    backend = backend_named(ex.backend)
    if backend is None:
        p.append(f"exchange.backend: must be {_one_of(backend_names())}, got {ex.backend!r}")
    if ex.auth not in ("basic", "ntlm", "oauth2"):
        p.append(f"exchange.auth: must be basic, ntlm or oauth2, got {ex.auth!r}")
    if ex.server and not ex.server.startswith(("https://", "http://")):
        p.append("exchange.server: must be an http(s) URL of the EWS endpoint, or blank for autodiscover")
    if backend is not None:
        p += backend.problems(cfg)
    if ex.max_connections < 1:
        p.append("exchange.max_connections: must be at least 1")
    for key in ("interval_minutes", "fallback_interval_minutes"):
        if getattr(cfg.sync, key) < 0:
            p.append(f"sync.{key}: must be 0 (off) or more")
    if ex.notifications not in ("auto", "off"):
        p.append(f"exchange.notifications: must be \"auto\" or \"off\", got {ex.notifications!r}")
    if cfg.sync.days_back < 0 or cfg.sync.days_ahead < 1:
        p.append("sync.days_back/days_ahead: days_back must be >= 0 and days_ahead >= 1")
    if cfg.sync.concurrency < 1:
        p.append("sync.concurrency: must be at least 1")
    seen_ext: set[str] = set()
    seen_mail: set[str] = set()
    for i, u in enumerate(cfg.users):
        key = f"users[{i}]"
        if not DIALABLE.fullmatch(u.extension):
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
        if u.notices_language and not _LANGUAGE.fullmatch(u.notices_language):
            p.append(f"{key}.notices_language: {u.notices_language!r} is not a language tag like \"en\" or \"de\"")
        if u.room and not DIALABLE.fullmatch(u.room):
            p.append(f"{key}.room: {u.room!r} is not a dialable room number")
        if u.presence_forward and not DIALABLE.fullmatch(u.presence_forward):
            p.append(f"{key}.presence_forward: {u.presence_forward!r} is not a dialable extension")
    for i, room in enumerate(cfg.pbx.rooms):
        if not DIALABLE.fullmatch(room):
            p.append(f"pbx.rooms[{i}]: {room!r} is not a dialable room number")
    if "{extension}" not in cfg.pbx.dial:
        p.append("pbx.dial: must contain {extension}, e.g. \"PJSIP/{extension}\"")
    if cfg.autocall.retries < 0 or cfg.autocall.retry_delay_seconds < 0:
        p.append("autocall.retries/retry_delay_seconds: must not be negative")
    if cfg.autocall.pacing_per_second < 0:
        p.append("autocall.pacing_per_second: must be 0 (off) or more")
    if not 0 <= cfg.autocall.verify_before_seconds <= 3600:
        p.append("autocall.verify_before_seconds: must be between 0 (off) and 3600")
    if not 1 <= cfg.meetings.max_group_members <= 10_000:
        p.append("meetings.max_group_members: must be between 1 and 10000")
    if not 0 <= cfg.meetings.group_cache_minutes <= 10_080:
        p.append("meetings.group_cache_minutes: must be between 0 (look up every pass) and 10080 (a week)")
    for i, domain in enumerate(cfg.meetings.group_domains):
        if not domain or "@" in domain or not _EMAIL_RE.match(f"x@{domain}"):
            p.append(f"meetings.group_domains[{i}]: {domain!r} is not a mail domain")
    p += _notices_problems(cfg.meetings)
    p += _dial_in_problems(cfg.pbx)
    if bool(cfg.ldap.tls_cert) != bool(cfg.ldap.tls_key):
        p.append("ldap.tls_cert/tls_key: give both or neither")
    if cfg.ldap.ldaps_listen is not None and not cfg.ldap.tls_cert:
        p.append("ldap.ldaps_listen: needs tls_cert and tls_key")
    if cfg.ldap.size_limit < 0 or cfg.ldap.max_connections < 1 or cfg.ldap.max_request_bytes < 1024:
        p.append("ldap.size_limit/max_connections/max_request_bytes: size_limit >= 0 (0 = none), "
                 "max_connections >= 1, max_request_bytes >= 1024")
    if cfg.ldap.time_limit_seconds < 0 or cfg.ldap.refresh_seconds < 0 or cfg.ldap.idle_timeout_seconds <= 0:
        p.append("ldap.time_limit_seconds/refresh_seconds/idle_timeout_seconds: must not be negative "
                 "(idle_timeout_seconds > 0)")
    for i, network in enumerate(cfg.agi.allow):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            p.append(f"agi.allow[{i}]: {network!r} is not an address or network like \"192.0.2.0/24\"")
    if cfg.agi.max_connections_per_source < 1:
        p.append("agi.max_connections_per_source: must be at least 1")
    if not 4 <= cfg.conference.pin_digits <= 16:
        p.append("conference.pin_digits: must be between 4 and 16")
    if (cfg.ldap.max_connections_per_source < 1 or cfg.ldap.max_bind_failures < 0
            or cfg.ldap.max_filter_terms < 0 or cfg.ldap.max_search_cost < 0):
        p.append("ldap.max_connections_per_source >= 1; max_bind_failures, max_filter_terms, max_search_cost "
                 ">= 0 (0 = no limit)")
    p += _presence_problems(cfg.presence)
    p += _phonebook_problems(cfg.phonebook)
    p += _control_problems(cfg.control)
    p += _web_problems(cfg)
    if cfg.log.level.lower() not in ("debug", "info", "warning", "error"):
        p.append("log.level: must be debug, info, warning or error")
    if cfg.log.format not in ("text", "json"):
        p.append("log.format: must be text or json")
    return p


def _presence_problems(presence: PresenceConfig) -> list[str]:
    p: list[str] = []
    for i, status in enumerate(presence.busy_statuses):
        if status not in SHOW_AS_NAMES:
            p.append(f"presence.busy_statuses[{i}]: {status!r} is not one of {', '.join(SHOW_AS_NAMES)}")
    for key in ("message", "oof_message"):
        template = getattr(presence, key)
        try:
            template.format(until="11:30")
        except (KeyError, IndexError, ValueError):
            p.append(f"presence.{key}: only the placeholder {{until}} may be used (write {{{{ }}}} for braces)")
    if presence.timezone:
        try:
            ZoneInfo(presence.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            p.append(f"presence.timezone: {presence.timezone!r} is not an IANA time zone like \"Europe/Berlin\"")
    return p


def _notices_problems(meetings: MeetingsConfig) -> list[str]:
    p: list[str] = []
    if not _LANGUAGE.fullmatch(meetings.notices_language):
        p.append(f"meetings.notices_language: {meetings.notices_language!r} is not a language tag like "
                 "\"en\" or \"de\"")
    if meetings.notices_from != "organizer" and not _EMAIL_RE.match(meetings.notices_from):
        p.append("meetings.notices_from: must be \"organizer\" or the address of a mailbox that sends the notices")
    if meetings.notices_templates and not meetings.notices_templates.startswith("/"):
        p.append("meetings.notices_templates: must be an absolute directory path (or blank for the shipped templates)")
    return p


_DIAL_IN_NUMBER = re.compile(r"\+?[0-9][0-9 ()/-]{2,31}")


def _dial_in_problems(pbx: PbxConfig) -> list[str]:
    p = [f"pbx.dial_in_numbers[{i}]: {n!r} is not a phone number like \"+49 30 1234567\""
         for i, n in enumerate(pbx.dial_in_numbers) if not _DIAL_IN_NUMBER.fullmatch(n)]
    if pbx.dial_in_room not in ("dtmf", "direct"):
        p.append(f"pbx.dial_in_room: must be \"dtmf\" or \"direct\", got {pbx.dial_in_room!r}")
    return p


PHONEBOOK_NUMBER_FORMATS = ("national", "international", "e164")
_DIAL_PREFIX = re.compile(r"[0-9*#]{0,8}")


def _phonebook_problems(book: PhonebookConfig) -> list[str]:
    p: list[str] = []
    if book.number_format not in PHONEBOOK_NUMBER_FORMATS:
        p.append(f"phonebook.number_format: must be {_one_of(list(PHONEBOOK_NUMBER_FORMATS))}, "
                 f"got {book.number_format!r}")
    if not _DIAL_PREFIX.fullmatch(book.dial_prefix):
        p.append("phonebook.dial_prefix: at most 8 of 0-9, * and #")
    elif book.dial_prefix and book.number_format == "e164":
        p.append("phonebook.dial_prefix: a prefix before \"+49...\" cannot be dialled; use number_format "
                 "national or international with it")
    if bool(book.tls_cert) != bool(book.tls_key):
        p.append("phonebook.tls_cert/tls_key: give both or neither")
    if book.refresh_seconds < 0 or book.cache_mb < 0:
        p.append("phonebook.refresh_seconds/cache_mb: must not be negative")
    return p


def _control_problems(control: ControlConfig) -> list[str]:
    p: list[str] = []
    if not control.socket and control.listen is None:
        p.append("control.socket: set a socket path (or control.listen with a token): the CLI needs a way in")
    if control.socket and (not control.socket.startswith("/") or len(control.socket) > _MAX_SOCKET_PATH):
        p.append(f"control.socket: must be an absolute path of at most {_MAX_SOCKET_PATH} characters")
    if control.listen is not None and not control.token:
        p.append("control.listen: TCP control needs control.token_file (one random line, readable by root "
                 "and pbxsync only); or use control.socket")
    if not control.allow_remote:
        for key, listen in (("listen", control.listen), ("metrics_listen", control.metrics_listen)):
            if listen is not None and not listen.is_loopback:
                p.append(f"control.{key}: {listen} is not a loopback address; set control.allow_remote = true "
                         "if it really must be reachable from the network")
    return p


_DIALPLAN_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,78}")


def _web_problems(cfg: Config) -> list[str]:
    web = cfg.web
    p: list[str] = []
    if bool(web.tls_cert) != bool(web.tls_key):
        p.append("web.tls_cert/tls_key: give both or neither")
    if not web.allowed_hosts:
        p.append("web.allowed_hosts: list the host names browsers use to reach the portal")
    for i, host in enumerate(web.allowed_hosts):
        if not host or host != host.strip().lower() or (any(c in host for c in "/:@ ") and not _is_ipv6(host)):
            p.append(f"web.allowed_hosts[{i}]: {host!r} is not a lower-case host name or address (no port)")
    extensions = {u.extension for u in cfg.users}
    for i, ext in enumerate(web.admins):
        if ext not in extensions:
            p.append(f"web.admins[{i}]: {ext!r} is not the extension of a user in [[users]]")
    for i, name in enumerate(web.user_settings):
        if name not in WEB_USER_SETTINGS:
            p.append(f"web.user_settings[{i}]: must be one of {_one_of(list(WEB_USER_SETTINGS))}, got {name!r}")
    for i, network in enumerate(web.trusted_proxies):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            p.append(f"web.trusted_proxies[{i}]: {network!r} is not an address or network like \"127.0.0.1/32\"")
    if not 5 <= web.session_minutes <= 43_200:
        p.append("web.session_minutes: must be between 5 and 43200 (30 days)")
    if not _DIALPLAN_CONTEXT.fullmatch(web.click_to_call_context):
        p.append(f"web.click_to_call_context: {web.click_to_call_context!r} is not a dialplan context name "
                 "(letters, digits, '-', '_')")
    return p


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def parse_config(data: dict[str, Any], source: str = "", base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    builder = TableBuilder()
    data, options = _without_backend_options(data)
    cfg = builder.build(Config, data, "")
    if cfg is not None:
        cfg = _with_backend_options(builder, cfg, options)
    problems = builder.problems
    if cfg is not None:  # invalid keys fell back to defaults, so the cross-checks still say something
        problems = problems + [q for q in _semantic_problems(cfg) if q.split(":")[0] not in
                               {b.split(":")[0] for b in problems}]
    if problems or cfg is None:
        raise ConfigError(problems or ["invalid configuration"], source)
    db = Path(cfg.database)
    if base_dir is not None and not db.is_absolute():
        db = base_dir / db  # relative paths are relative to the config file, not the cwd
    return replace(cfg, database=str(db), path=source)


def _without_backend_options(data: dict[str, Any]) -> tuple[dict[str, Any], object]:
    """Takes the table [exchange.<backend>] out of the document when that backend declares options."""
    exchange = data.get("exchange")
    if not isinstance(exchange, dict) or not isinstance(exchange.get("backend"), str):
        return data, None
    backend = backend_named(exchange["backend"])
    if backend is None or backend.options is None or backend.name not in exchange:
        return data, None
    rest = {k: v for k, v in exchange.items() if k != backend.name}
    return {**data, "exchange": rest}, exchange[backend.name]


def _with_backend_options(builder: TableBuilder, cfg: Config, table: object) -> Config:
    backend = backend_named(cfg.exchange.backend)
    if backend is None or backend.options is None:
        return cfg
    options = builder.build(backend.options, {} if table is None else table, f"exchange.{backend.name}")
    return replace(cfg, exchange=replace(cfg.exchange, options=options))


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
