"""Invited groups over EWS: ExpandDL, nested groups expanded in turn (runs in the EWS source's worker
thread, like every exchangelib call; its errors are mapped there).

ExpandDL is not recursive: a nested group comes back as one entry (MailboxType PublicDL, PrivateDL, or
GroupMailbox for a Microsoft 365 group) and is expanded by another call. `seen` is the loop guard (a group
nested in itself, or two groups in each other); MAX_NESTED_GROUPS bounds the calls for one invitation.
"""

from __future__ import annotations

from exchangelib import Account
from exchangelib import errors as ews_errors

from pbxsync.sync.model import GroupMembers
from pbxsync.sync.sources.graph_mapping import clean_text

# ExpandDL lists a nested group as an entry of one of these mailbox types; its members are read in turn.
_GROUP_MAILBOX_TYPES = frozenset({"PublicDL", "PrivateDL", "GroupMailbox"})
# Entries that are no one with a mailbox (outside contacts, one-off addresses, public folders): never a
# PBX user's mailbox, and Graph's transitiveMembers of users leaves them out as well.
_NOT_PEOPLE = frozenset({"Contact", "OneOff", "PublicFolder"})
MAX_NESTED_GROUPS = 50  # ExpandDL calls for one invited group, nested ones included (a loop or a huge tree)


def expand_dl(account: Account, address: str, max_members: int) -> GroupMembers | None:
    """The people of the group `address`, or None when Exchange says it is no group."""
    top = address.strip().lower()
    members: dict[str, None] = {}
    pending, seen = [top], {top}
    calls = 0
    while pending:
        group = pending.pop(0)
        if calls >= MAX_NESTED_GROUPS:
            return GroupMembers(top, "", tuple(members), complete=False)
        calls += 1
        try:
            entries = account.protocol.expand_dl(group)
            for entry in entries:
                if isinstance(entry, Exception):
                    raise entry
        except ews_errors.ErrorNameResolutionNoResults:
            if group == top:
                return None  # not a group (a person, a room, an unknown address)
            continue  # a nested entry Exchange cannot expand (hidden, or gone): its members are unknown
        for entry in entries:
            value = getattr(entry, "email_address", None)
            email = clean_text(value, 320).lower() if isinstance(value, str) else ""
            kind = getattr(entry, "mailbox_type", None)
            if not email or "@" not in email or kind in _NOT_PEOPLE:
                continue
            if kind in _GROUP_MAILBOX_TYPES:
                if email not in seen:
                    seen.add(email)
                    pending.append(email)
                continue
            members.setdefault(email, None)
            if len(members) > max_members:
                return GroupMembers(top, "", tuple(members), complete=False)
    return GroupMembers(top, "", tuple(members))
