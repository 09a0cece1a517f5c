"""The one error hierarchy of pbxsync.

Every failure that crosses a module boundary is a `PbxsyncError`. Adapters map library exceptions
(exchangelib, panoramisk, sqlite3, OS errors) to these at their edge, so callers never need to know
which library failed. `UserError` and its children are the user's to fix: the CLI prints their
message as one line, without a traceback.
"""

from __future__ import annotations


class PbxsyncError(Exception):
    """Base of every error pbxsync raises on purpose."""


class ServiceUnavailableError(PbxsyncError):
    """A part of the running daemon that a request needs is not running (e.g. the sync service)."""


class UserError(PbxsyncError):
    """Something the operator can fix (bad config, bad argument); shown as one line."""


class ConfigError(UserError):
    """The configuration file is missing, unreadable or invalid.

    `problems` lists every problem as ``key.path: message`` so one run shows them all.
    """

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = f"{where}{self.problems[0]}"
        else:
            text = f"{where}{len(self.problems)} problems:\n  " + "\n  ".join(self.problems)
        super().__init__(text)


class SecretError(UserError):
    """A secret could not be read. The message names where it was looked for, never its value."""


class StoreError(PbxsyncError):
    """The SQLite store failed or refused (corruption, schema newer than this code)."""


class StoreReadOnlyError(StoreError, UserError):
    """The database may be read but not written (file, directory or filesystem read-only)."""


class StorePermissionError(StoreError, UserError):
    """The database cannot be opened at all (permission denied, directory missing)."""


class StoreCorruptError(StoreError):
    """The database file is damaged or not a database; restore a backup."""


class SchemaTooNewError(StoreError, UserError):
    """The database was written by a newer pbxsync; refusing to touch it."""


class SourceError(PbxsyncError):
    """Fetching from Exchange failed. A source error never deletes or cancels anything."""


class SourceAuthError(SourceError):
    """Exchange refused the credentials (401, expired/revoked token)."""


class SourceAccessError(SourceError):
    """The credentials work but the mailbox may not be read (ErrorAccessDenied, impersonation)."""


class SourceBusyError(SourceError):
    """Exchange asked us to back off (ErrorServerBusy, 429, 503) for longer than we wait."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class SourceDataError(SourceError):
    """Exchange sent something we cannot trust (malformed XML, impossible values)."""


class WriteConflictError(SourceError):
    """A write named a stale change key / etag (EWS ErrorIrresolvableConflict, Graph 412): someone changed
    the item since it was read. Re-read and decide again; never overwrite the newer edit."""


class WriteDeniedError(SourceAccessError):
    """The mailbox may be read but not written (EWS ErrorAccessDenied on a write, Graph 403 on a PATCH)."""


class ItemGoneError(SourceAccessError):
    """The item to write no longer exists (deleted or moved since it was synced)."""


class PbxError(PbxsyncError):
    """The PBX side failed (AMI link down, action refused)."""


class AmiPermissionError(PbxError, UserError):
    """The AMI user lacks a permission class; the message names it."""


class AmiRefusedError(PbxError):
    """Asterisk answered an action with Response: Error (e.g. Originate: "Extension does not exist."): the link
    is up and the request was read, so sending it again unchanged would be refused again."""


class AmiTimeoutError(PbxError):
    """An AMI action got no answer in time."""


class ValidationError(PbxsyncError):
    """A hostile or malformed value was rejected before it reached AMI, the dialplan or LDAP."""
