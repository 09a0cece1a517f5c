"""Who takes part in a booking, and why: the pure rules over one meeting's copies (docs/meetings.md).

- The organizer, when a PBX user, is the host.
- Every attendee in the truth copy who is a PBX user takes part (required or optional). Resources
  (rooms, equipment) and entries without an address are skipped; any other address is unmatched.
- An unmatched address that is a known group (see plugin/booking/groups.py) brings in its members who
  are PBX users, with the group's attendee kind, marked `via_group`; a group too large is unmatched with
  the reason instead. People named in the list themselves come first and keep that standing.
- A PBX user whose own synced calendar holds a copy they have not declined takes part even when the
  truth copy does not list them yet (an invitee forwarded it to them): `forwarded`, optional. Someone the
  organizer listed before and removed since is not brought back by their stale copy. When the meeting
  invites a group too large to expand, nobody comes in this way: their copy most likely came through
  that group (Exchange delivers to every member), and the limit exists so a meeting with a whole
  company's group does not call the whole company.
- Who is no longer invited stays in the list (call attempts reference them) with invited = False.
- A group member's or forwarded participant's answer is their own copy's, when their calendar holds one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pbxsync.plugin.booking.groups import too_large
from pbxsync.plugin.booking.model import Booking, CopyState, MailboxCopy, MailboxSync, Participant, Role
from pbxsync.plugin.directory import Directory, DirectoryEntry
from pbxsync.sync.model import Attendee, AttendeeKind, GroupMembers, Occurrence, ResponseType

SyncOf = Callable[[DirectoryEntry | None], MailboxSync | None]


@dataclass(frozen=True)
class People:
    """A booking's participants and the invitee addresses that matched nobody (with why, when known)."""

    participants: tuple[Participant, ...]
    unmatched: tuple[str, ...]
    unmatched_reasons: tuple[tuple[str, str], ...]


def _role(kind: AttendeeKind) -> Role:
    return Role.OPTIONAL if kind is AttendeeKind.OPTIONAL else Role.REQUIRED


class ParticipantRules:
    def __init__(self, directory: Directory, sync_of: SyncOf, groups: Mapping[str, GroupMembers],
                 max_group_members: int) -> None:
        self.directory = directory
        self.sync_of = sync_of
        self.groups = groups
        self.max_group_members = max_group_members

    def copy_state(self, entry: DirectoryEntry, start: datetime, end: datetime,
                   held_by: set[str] | Mapping[str, object], before: Participant | None) -> CopyState:
        previous = before.copy_state if before else CopyState.UNKNOWN
        sync = self.sync_of(entry)
        if sync is None:
            return CopyState.UNKNOWN
        if entry.mailbox in held_by:
            return CopyState.PRESENT
        if previous is not CopyState.UNKNOWN and sync.covers(start, end):
            return CopyState.DELETED
        return previous

    def people(self, truth: Occurrence, organizer: DirectoryEntry | None, copies: Sequence[MailboxCopy],
               booking: Booking | None) -> People:
        held = {c.mailbox: c.occurrence for c in copies}
        before = {p.extension: p for p in booking.draft.participants} if booking else {}
        people: list[Participant] = []
        seen: set[str] = set()

        def add(entry: DirectoryEntry, name: str, role: Role, response: str, via_group: str = "",
                forwarded: bool = False) -> None:
            seen.add(entry.extension)
            state = (CopyState.PRESENT if entry.mailbox in held else CopyState.UNKNOWN) if role is Role.HOST \
                else self.copy_state(entry, truth.start, truth.end, held, before.get(entry.extension))
            people.append(Participant(extension=entry.extension, email=entry.mailbox, name=entry.name or name,
                                      role=role, response=response, copy_state=state, via_group=via_group,
                                      forwarded=forwarded))

        def own_answer(entry: DirectoryEntry, otherwise: ResponseType) -> str:
            own = held.get(entry.mailbox)
            return str(own.my_response if own is not None and own.my_response is not ResponseType.UNKNOWN
                       else otherwise)

        if organizer is not None:
            add(organizer, truth.organizer_name, Role.HOST, "organizer")
        unmatched: dict[str, str] = {}  # address -> why ("" = not a PBX user), in the list's order
        invited_groups: list[tuple[Attendee, str, GroupMembers]] = []
        for attendee in truth.attendees:
            if attendee.kind is AttendeeKind.RESOURCE or not attendee.email.strip():
                continue
            entry = self.directory.match(attendee.email)
            if entry is None:
                address = self.directory.smtp(attendee.email)
                group = self.groups.get(address)
                why = too_large(group, self.max_group_members) if group is not None else None
                if group is None or why is not None:
                    unmatched.setdefault(address, why or "")
                else:
                    invited_groups.append((attendee, address, group))
                continue
            if entry.extension not in seen:
                add(entry, attendee.name, _role(attendee.kind), str(attendee.response))
        for attendee, address, group in invited_groups:
            for member in group.members:
                entry = self.directory.match(member)
                if entry is not None and entry.extension not in seen:
                    add(entry, "", _role(attendee.kind), own_answer(entry, attendee.response), via_group=address)
        for mailbox in sorted(held) if not any(why for why in unmatched.values()) else ():
            entry = self.directory.match(mailbox)
            if entry is None or entry.extension in seen or entry.mailbox != mailbox:
                continue
            if held[mailbox].my_response is ResponseType.DECLINE:
                continue
            was = before.get(entry.extension)
            if was is not None and not was.forwarded:
                continue  # the organizer listed them and removed them since: their copy is stale
            add(entry, "", Role.OPTIONAL, own_answer(entry, ResponseType.NO_RESPONSE), forwarded=True)
        # Uninvited people stay (their ids are referenced by call attempts) but are never called. Their copy
        # state follows their calendar as everyone else's does, so a later pass that only refreshes copy
        # states (the planner's copies-only path) finds nothing to change.
        for p in booking.draft.participants if booking else ():
            if p.extension in seen:
                continue
            entry = self.directory.by_extension(p.extension)
            state = p.copy_state if entry is None or p.role is Role.HOST else self.copy_state(
                entry, truth.start, truth.end, held, p)
            people.append(replace(p, invited=False, copy_state=state))
        return People(tuple(people), tuple(unmatched), tuple((a, why) for a, why in unmatched.items() if why))
