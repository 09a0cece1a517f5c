"""The built-in LDAP phonebook: synced Exchange contacts served to desk phones from the SQLite store."""

from pbxsync.plugin.ldap.server import LdapServer, LdapServerError

__all__ = ["LdapServer", "LdapServerError"]
