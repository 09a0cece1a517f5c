"""A replaced LDAP index is freed as soon as nothing uses it: it holds no reference cycle, so the
servers' gc.freeze() after a rebuild (plugin.ldap.server, plugin.phonebook.server) cannot keep it."""

from __future__ import annotations

import gc

from pbxsync.plugin.ldap.build import ContactRow, PhoneRow, build_index
from pbxsync.plugin.ldap.index import Index
from pbxsync.plugin.ldap.numbers import NumberForms


def test_an_index_nobody_uses_is_freed_without_the_cyclic_gc() -> None:
    rows = [(ContactRow("a@example.com", f"id{i}", f"Name {i}", "Name", str(i), "ACME", "", "[]"),
             [PhoneRow("business", f"+49 30 1234 {i:04d}", None, "")]) for i in range(20)]
    def indexes() -> int:
        return sum(isinstance(o, Index) for o in gc.get_objects())

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = indexes()
        index = build_index(rows, "ou=contacts,dc=pbxsync", NumberForms("DE"))
        assert index.base.eid == -1 and len(index.entries) == 20 and index.entries[3].index is index
        assert indexes() == before + 1
        del index
        assert indexes() == before  # freed by its reference count alone
    finally:
        if was_enabled:
            gc.enable()
