"""Who may bind, and which contacts each bind sees.

- Anonymous (empty name) binds and connections that never bind see the *shared* contacts, only when
  `[ldap] anonymous = true`.
- The service account `[ldap] bind_dn` / `bind_password` sees the shared contacts.
- A PBX user binds as `uid=<extension>,<base_dn>` (or just `<extension>`, or their e-mail address)
  with `[[users]] ldap_password` and sees their own synced contacts plus the shared ones.
- "Shared" is `[ldap] shared_mailboxes`: mailboxes whose synced contacts everybody sees; `"*"` (the
  default) means every synced mailbox, `[]` means nothing is shared.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum

from pbxsync.plugin.directory import shared_mailboxes, visible_mailboxes
from pbxsync.plugin.ldap.index import normalise_dn
from pbxsync.plugin.ldap.protocol import ResultCode
from pbxsync.sync.config import Config


@dataclass(frozen=True, slots=True)
class View:
    """The mailboxes whose contacts a connection sees; None means every mailbox."""

    mailboxes: frozenset[str] | None
    who: str  # for logs: "anonymous", "service", "user 201"
    authenticated: bool


class BindKind(Enum):
    ANONYMOUS = "anonymous"
    SERVICE = "service"
    USER = "user"


@dataclass(frozen=True, slots=True)
class BindOutcome:
    code: ResultCode
    view: View | None  # None: the connection may not search (anonymous access disabled)
    diagnostic: str = ""


class Access:
    def __init__(self, config: Config) -> None:
        ldap = config.ldap
        self.config = config
        self.anonymous_allowed = ldap.anonymous
        self.shared: frozenset[str] | None = shared_mailboxes(config)
        self.service_dn = normalise_dn(ldap.bind_dn) if ldap.bind_dn else ""
        self.service_password = ldap.bind_password.reveal().encode("utf-8")
        self.users: dict[str, tuple[str, bytes]] = {}  # bind name -> (extension, password)
        for user in config.users:
            password = user.ldap_password.reveal().encode("utf-8")
            if not password:
                continue  # a user without an LDAP password cannot bind as themselves
            record = (user.extension, password)
            self.users[normalise_dn(f"uid={user.extension},{ldap.base_dn}")] = record
            self.users[user.extension.lower()] = record
            for mail in user.email:
                self.users[mail.lower()] = record

    def user_view(self, extension: str) -> View | None:
        """What the PBX user `extension` sees once authenticated (by a bind, or a phonebook token): their
        own contacts plus the shared ones (plugin.directory.visible_mailboxes, as the portal shows them).
        None for an extension that is not a configured user."""
        if self.config.user_by_extension(extension) is None:
            return None
        return View(visible_mailboxes(self.config, extension), f"user {extension}", True)

    def anonymous_view(self) -> View | None:
        return View(self.shared, "anonymous", False) if self.anonymous_allowed else None

    def bind(self, version: int, name: str, password: bytes | None) -> BindOutcome:
        if version not in (2, 3):
            return BindOutcome(ResultCode.PROTOCOL_ERROR, self.anonymous_view(),
                               "only LDAP versions 2 and 3 are supported")
        if password is None:
            return BindOutcome(ResultCode.AUTH_METHOD_NOT_SUPPORTED, self.anonymous_view(),
                               "only simple binds are supported")
        if not password:  # anonymous, or an "unauthenticated" bind (name without password, RFC 4513 5.1.2)
            view = self.anonymous_view()
            if view is None:
                code = ResultCode.UNWILLING_TO_PERFORM if name else ResultCode.INAPPROPRIATE_AUTHENTICATION
                return BindOutcome(code, None, "anonymous access is disabled; bind with a name and password")
            return BindOutcome(ResultCode.SUCCESS, view)
        key = normalise_dn(name) if "=" in name else name.strip().lower()
        if self.service_dn and key == self.service_dn:
            if self.service_password and hmac.compare_digest(password, self.service_password):
                return BindOutcome(ResultCode.SUCCESS, View(self.shared, "service", True))
            return self._refused()
        record = self.users.get(key)
        if record is not None and hmac.compare_digest(password, record[1]):
            view = self.user_view(record[0])
            if view is not None:
                return BindOutcome(ResultCode.SUCCESS, view)
        return self._refused()

    def _refused(self) -> BindOutcome:
        # RFC 4513: after a failed bind the connection is anonymous.
        return BindOutcome(ResultCode.INVALID_CREDENTIALS, self.anonymous_view(), "invalid credentials")
