"""What every LDAP session of one server shares (the `Directory`: index snapshot, access rules, limits,
the bind guard, the root DSE) and the attribute selections requests ask for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pbxsync.plugin.ldap.access import Access
from pbxsync.plugin.ldap.ber import sequence, tlv
from pbxsync.plugin.ldap.index import Entry, Index, encode_attribute
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import OID_PAGED_RESULTS, OID_SORT_REQUEST, OID_START_TLS, SEARCH_ENTRY
from pbxsync.plugin.ldap.schema import attribute_index
from pbxsync.plugin.ldap.throttle import BindGuard
from pbxsync.sync.config import LdapConfig

SUPPORTED_CONTROLS = (OID_PAGED_RESULTS, OID_SORT_REQUEST)
ABSOLUTE_TRUE_FALSE = "1.3.6.1.4.1.4203.1.5.3"  # RFC 4526 (&) and (|)


@dataclass(eq=False)
class Directory:
    """What every session of one server shares. The server swaps `index` when the store changes; a
    session reads it afresh for every request."""

    settings: LdapConfig
    access: Access
    forms: NumberForms
    index: Index
    clock: Callable[[], float]  # monotonic seconds: time limits
    start_tls: bool = False  # StartTLS is offered (a certificate is configured)
    searches: int = 0  # answered since start (for health)
    refused_searches: int = 0  # refused by the cost estimate (plugin.ldap.cost)
    root_dse: dict[str, tuple[str, ...]] = field(init=False)
    binds: BindGuard = field(init=False)

    def __post_init__(self) -> None:
        self.binds = BindGuard()
        self.root_dse = {
            "objectClass": ("top",),
            "namingContexts": (self.settings.base_dn,),
            "supportedLDAPVersion": ("2", "3"),
            "supportedControl": SUPPORTED_CONTROLS,
            "supportedFeatures": (ABSOLUTE_TRUE_FALSE,),
            "vendorName": ("pbxsync",),
        }
        if self.start_tls:
            self.root_dse["supportedExtension"] = (OID_START_TLS,)

    def root_dse_entry(self, requested: tuple[str, ...], types_only: bool) -> bytes:
        wanted = {a.lower() for a in requested}
        every = not wanted or "*" in wanted or "+" in wanted
        attrs = [encode_attribute(name, () if types_only else values) for name, values in self.root_dse.items()
                 if every or name.lower() in wanted]
        return tlv(SEARCH_ENTRY, b"\x04\x00" + sequence(*attrs))


_SELECTIONS: dict[tuple[str, ...], tuple[int, ...] | None] = {}  # phones send a few attribute lists


def select_attributes(requested: tuple[str, ...]) -> tuple[int, ...] | None:
    """Positions of the requested attributes; None means every user attribute (empty list or `*`)."""
    try:
        return _SELECTIONS[requested]
    except KeyError:
        pass
    if not requested or "*" in requested:
        chosen: tuple[int, ...] | None = None
    else:  # "1.1", "+" and unknown names select nothing
        chosen = tuple(sorted({p for p in (attribute_index(a) for a in requested) if p is not None}))
    if len(requested) <= 32 and sum(len(a) for a in requested) <= 512:  # never remember hostile lists
        if len(_SELECTIONS) >= 256:
            _SELECTIONS.clear()
        _SELECTIONS[requested] = chosen
    return chosen


def entry_op(entry: Entry, selection: tuple[int, ...] | None, types_only: bool) -> bytes:
    return entry.index.encode(entry.eid, selection, types_only)
