"""Groups in the simulated directory: distribution groups, mail-enabled security groups and Microsoft 365
groups, invited to meetings by their address.

A group is a directory object, not a mailbox item: it belongs to the organisation, members are addresses
(users, other groups, outside contacts). Exchange delivers an invitation to a group to every member with
a mailbox, nested groups included; EWS ExpandDL lists one level (a nested group is one entry of mailbox
type PublicDL, or GroupMailbox for a Microsoft 365 group) and Graph's transitiveMembers all levels.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Container, Iterable
from dataclasses import dataclass

GROUP_KINDS = ("distribution", "security", "m365")
# EWS MailboxTypeType of a group: a Microsoft 365 group is a GroupMailbox, the others public DLs.
_MAILBOX_TYPES = {"distribution": "PublicDL", "security": "PublicDL", "m365": "GroupMailbox"}


@dataclass(frozen=True)
class GroupRecord:
    email: str  # lower-case SMTP
    name: str
    kind: str = "distribution"  # one of GROUP_KINDS
    members: tuple[str, ...] = ()  # lower-case addresses: users, groups, outside contacts

    @property
    def object_id(self) -> str:
        """The group's directory id (a GUID, as Graph shows it), stable for its address."""
        return str(uuid.UUID(bytes=hashlib.sha256(f"group|{self.email}".encode()).digest()[:16]))

    @property
    def mailbox_type(self) -> str:
        return _MAILBOX_TYPES.get(self.kind, "PublicDL")


class GroupDirectory:
    """The organisation's groups by address. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, GroupRecord] = {}

    def add(self, group: GroupRecord) -> None:
        with self._lock:
            self._groups[group.email.lower()] = group

    def get(self, address: str) -> GroupRecord | None:
        with self._lock:
            return self._groups.get(address.strip().lower())

    def by_object_id(self, object_id: str) -> GroupRecord | None:
        with self._lock:
            return next((g for g in self._groups.values() if g.object_id == object_id), None)

    def transitive(self, address: str) -> tuple[list[str], list[GroupRecord]]:
        """Everyone below `address` (addresses that are no group), and every nested group, each once,
        in member order; a group nested in itself is listed once (as Graph's transitiveMembers does)."""
        people: list[str] = []
        nested: list[GroupRecord] = []
        seen = {address.strip().lower()}
        pending = [address.strip().lower()]
        while pending:
            group = self.get(pending.pop(0))
            for member in group.members if group else ():
                if member in seen:
                    continue
                seen.add(member)
                inner = self.get(member)
                if inner is None:
                    people.append(member)
                else:
                    nested.append(inner)
                    pending.append(member)
        return people, nested

    def delivery(self, addresses: Iterable[str], mailboxes: Container[str]) -> list[str]:
        """The mailboxes an invitation sent to `addresses` reaches through groups (members with a mailbox)."""
        found: list[str] = []
        for address in addresses:
            if self.get(address) is None:
                continue
            for person in self.transitive(address)[0]:
                if person in mailboxes and person not in found:
                    found.append(person)
        return found
