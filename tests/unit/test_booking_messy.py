"""Real mailboxes are messy (issue 12): invitations to groups, forwarded copies, private meetings,
resources, delegates, items without a UID, huge guest lists. The rules through the pure planner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pbxsync.plugin.booking.groups import (
    MAX_LOOKUPS_PER_PASS,
    GroupCacheEntry,
    group_domains,
    known_groups,
    plan_group_lookups,
    too_large,
)
from pbxsync.plugin.booking.model import Booking, BookingAction, MailboxCopy, MailboxSync, Participant, Role
from pbxsync.plugin.booking.planner import plan_bookings
from pbxsync.plugin.booking.privacy import PRIVATE_SUBJECT
from pbxsync.plugin.commands.conferences import render_table, unmatched_lines
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import Config, MeetingsConfig, UserConfig
from pbxsync.sync.model import Attendee, AttendeeKind, GroupMembers, Occurrence, ResponseType, Sensitivity
from tests.support.booking_plans import settle_with

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ALICE, BOB, CAROL, DAVE, ERIN = ("alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com",
                                 "erin@example.com")
TEAM, ALL = "team@example.com", "all@example.com"
DIRECTORY = Directory.from_config(Config(users=[
    UserConfig(extension="201", email=[ALICE], name="Alice", room="801"),
    UserConfig(extension="202", email=[BOB], name="Bob", room="802"),
    UserConfig(extension="203", email=[CAROL], name="Carol", room="803"),
    UserConfig(extension="204", email=[DAVE], name="Dave", room="804"),
    UserConfig(extension="205", email=[ERIN], name="Erin", room="805", sync_calendar=False),
]))
TEAM_GROUP = GroupMembers(TEAM, "Team", (BOB, CAROL, "nobody@example.com", ERIN))


def person(email: str, response: ResponseType = ResponseType.ACCEPT,
           kind: AttendeeKind = AttendeeKind.REQUIRED) -> Attendee:
    return Attendee(email, email.partition("@")[0], kind, response)


def occ(attendees: Sequence[Attendee] = (), *, uid: str = "m1", organizer: str = ALICE, item_id: str = "",
        **kw: object) -> Occurrence:
    return Occurrence(item_id=item_id or f"{uid}-item", change_key="ck", uid=uid, start=TEN,
                      end=TEN + timedelta(hours=1), subject="Board: layoffs in Q3", location="PBX AUTOCALL",
                      organizer_email=organizer, organizer_name="Org", attendees=tuple(attendees),
                      **kw)  # type: ignore[arg-type]


def copies(*pairs: tuple[str, Occurrence]) -> list[MailboxCopy]:
    return [MailboxCopy(mailbox, o, f"2026-12-01T07:00:0{i}+00:00") for i, (mailbox, o) in enumerate(pairs)]


SYNCS = {m: MailboxSync(m, True, NOW - timedelta(days=1), NOW + timedelta(days=30)) for m in (ALICE, BOB, CAROL, DAVE)}


def plan(cs: Sequence[MailboxCopy], existing: Sequence[Booking] = (), groups: Mapping[str, GroupMembers] | None = None,
         max_group_members: int = 200, rooms: Sequence[str] = ("850",)) -> list[BookingAction]:
    return plan_bookings(cs, SYNCS, DIRECTORY, existing, rooms, NOW, groups or {}, max_group_members)


def settle(cs: Sequence[MailboxCopy], existing: Sequence[Booking] = (), **kw: object) -> list[Booking]:
    return settle_with(plan, cs, existing, **kw)


def people(bookings: Sequence[Booking]) -> dict[str, Participant]:
    (booking,) = bookings
    return {p.extension: p for p in booking.draft.participants}


# -- invitations to groups ---------------------------------------------------------------------------------

def test_an_invited_group_brings_in_its_members_who_are_pbx_users_and_says_which_group() -> None:
    bookings = settle(copies((ALICE, occ([person(TEAM, ResponseType.NO_RESPONSE)]))), groups={TEAM: TEAM_GROUP})
    found = people(bookings)
    assert sorted(found) == ["201", "202", "203", "205"]
    for ext in ("202", "203", "205"):
        assert (found[ext].via_group, found[ext].role, found[ext].call) == (TEAM, Role.REQUIRED, True)
    assert found["201"].via_group == "" and found["201"].role is Role.HOST
    assert bookings[0].draft.unmatched == ()  # neither the group nor its members who are nobody's


def test_someone_invited_by_name_and_through_a_group_counts_as_invited_by_name() -> None:
    found = people(settle(copies((ALICE, occ([person(TEAM), person(BOB, kind=AttendeeKind.OPTIONAL)]))),
                          groups={TEAM: TEAM_GROUP}))
    assert (found["202"].via_group, found["202"].role) == ("", Role.OPTIONAL)
    assert found["203"].via_group == TEAM


def test_an_optional_group_makes_optional_participants() -> None:
    found = people(settle(copies((ALICE, occ([person(TEAM, kind=AttendeeKind.OPTIONAL)]))), groups={TEAM: TEAM_GROUP}))
    assert found["202"].role is Role.OPTIONAL


def test_a_group_member_who_declined_in_their_own_calendar_is_not_called() -> None:
    own = occ([person(TEAM, ResponseType.NO_RESPONSE)], my_response=ResponseType.DECLINE)
    found = people(settle(copies((ALICE, occ([person(TEAM, ResponseType.NO_RESPONSE)])), (BOB, own)),
                          groups={TEAM: TEAM_GROUP}))
    assert (found["202"].response, found["202"].call) == ("decline", False)
    assert (found["203"].response, found["203"].call) == ("noresponse", True)


def test_a_group_larger_than_the_limit_is_not_expanded_and_is_unmatched_with_the_reason() -> None:
    (booking,) = settle(copies((ALICE, occ([person(TEAM), person("guest@partner.org")]))), groups={TEAM: TEAM_GROUP},
                        max_group_members=3)
    assert [p.extension for p in booking.draft.participants] == ["201"]
    assert booking.draft.unmatched == (TEAM, "guest@partner.org")
    reasons = dict(booking.draft.unmatched_reasons)
    assert list(reasons) == [TEAM]
    assert reasons[TEAM] == "group of 4 people, more than [meetings] max_group_members = 3: not expanded"


def test_a_group_read_only_in_part_is_too_large() -> None:
    part = GroupMembers(ALL, "All", tuple(f"p{i}@example.com" for i in range(201)), complete=False)
    assert too_large(part, 200) == "group of more than 200 people, more than [meetings] max_group_members = 200: " \
                                   "not expanded"
    assert too_large(replace(part, members=part.members[:3]), 200) == \
        "group too deeply nested to read in full: not expanded"
    assert too_large(TEAM_GROUP, 200) is None


def test_an_address_never_looked_up_or_not_a_group_stays_unmatched() -> None:
    (booking,) = settle(copies((ALICE, occ([person(TEAM)]))))
    assert booking.draft.unmatched == (TEAM,) and booking.draft.unmatched_reasons == ()


def test_a_group_that_shrank_uninvites_its_former_members_without_calling_them() -> None:
    first = settle(copies((ALICE, occ([person(TEAM)]))), groups={TEAM: TEAM_GROUP})
    smaller = replace(TEAM_GROUP, members=(BOB,))
    found = people(settle(copies((ALICE, occ([person(TEAM)]))), first, groups={TEAM: smaller}))
    assert (found["203"].invited, found["203"].call) == (False, False)
    assert found["202"].call


# -- forwarded copies ----------------------------------------------------------------------------------------

def test_a_pbx_user_holding_a_forwarded_copy_is_called_before_the_organizer_lists_them() -> None:
    organizer_copy = occ([person(BOB)])
    forwarded = occ([person(BOB)], my_response=ResponseType.NO_RESPONSE)
    found = people(settle(copies((ALICE, organizer_copy), (CAROL, forwarded))))
    carol = found["203"]
    assert (carol.forwarded, carol.role, carol.response, carol.call) == (True, Role.OPTIONAL, "noresponse", True)
    assert not found["202"].forwarded


def test_a_declined_forwarded_copy_brings_nobody_in() -> None:
    found = people(settle(copies((ALICE, occ([person(BOB)])), (CAROL, occ([person(BOB)],
                                                                          my_response=ResponseType.DECLINE)))))
    assert "203" not in found


def test_once_the_organizer_lists_a_forwarded_participant_they_are_an_ordinary_invitee() -> None:
    first = settle(copies((ALICE, occ([person(BOB)])), (CAROL, occ([person(BOB)]))))
    later = settle(copies((ALICE, occ([person(BOB), person(CAROL, kind=AttendeeKind.OPTIONAL)])),
                          (CAROL, occ([person(BOB)]))), first)
    carol = people(later)["203"]
    assert (carol.forwarded, carol.invited, carol.call) == (False, True, True)


def test_an_invitee_the_organizer_removed_is_not_brought_back_by_their_stale_copy() -> None:
    first = settle(copies((ALICE, occ([person(BOB), person(CAROL)])), (CAROL, occ([person(BOB), person(CAROL)]))))
    later = settle(copies((ALICE, occ([person(BOB)])), (CAROL, occ([person(BOB), person(CAROL)]))), first)
    carol = people(later)["203"]
    assert (carol.invited, carol.forwarded, carol.call) == (False, False, False)


def test_copies_that_came_through_a_group_too_large_to_expand_bring_nobody_in() -> None:
    # Exchange delivers an invitation to all@ to every member: their copies are no forwarded copies.
    everyone = GroupMembers(ALL, "All", (ALICE, BOB, CAROL, DAVE, ERIN))
    invitation = occ([person(ALL, ResponseType.NO_RESPONSE)])
    (booking,) = settle(copies((ALICE, invitation), (BOB, invitation), (CAROL, invitation)),
                        groups={ALL: everyone}, max_group_members=3)
    assert [p.extension for p in booking.draft.participants] == ["201"]
    assert booking.draft.unmatched == (ALL,)


# -- private meetings --------------------------------------------------------------------------------------

def test_private_and_confidential_meetings_are_booked_with_a_placeholder_subject() -> None:
    for sensitivity in (Sensitivity.PRIVATE, Sensitivity.CONFIDENTIAL):
        (booking,) = settle(copies((ALICE, occ([person(BOB)], sensitivity=sensitivity))))
        assert (booking.draft.subject, booking.draft.private) == (PRIVATE_SUBJECT, True)
        assert booking.draft.state.value == "scheduled" and booking.draft.autocall
    (personal,) = settle(copies((ALICE, occ([person(BOB)], sensitivity=Sensitivity.PERSONAL))))
    assert (personal.draft.subject, personal.draft.private) == ("Board: layoffs in Q3", False)


def test_a_private_meetings_subject_is_not_in_a_room_conflict_reason_either() -> None:
    first = occ([person(BOB)], uid="a", sensitivity=Sensitivity.PRIVATE)
    second = occ([person(BOB)], uid="b", sensitivity=Sensitivity.PRIVATE)
    bookings = settle(copies((ALICE, first), (ALICE, second)), rooms=())
    rejected = [b for b in bookings if b.draft.state.value == "rejected"]
    assert rejected and all("layoffs" not in (b.draft.reason or "") for b in rejected)
    assert "layoffs" not in render_table(bookings, NOW)


def test_a_meeting_turned_private_replaces_the_subject_it_had() -> None:
    first = settle(copies((ALICE, occ([person(BOB)]))))
    (later,) = settle(copies((ALICE, occ([person(BOB)], sensitivity=Sensitivity.PRIVATE))), first)
    assert later.draft.subject == PRIVATE_SUBJECT


# -- resources, delegates, items without a UID -------------------------------------------------------------

def test_rooms_and_equipment_are_neither_called_nor_unmatched_nor_looked_up_as_groups() -> None:
    room = person("room.4@example.com", kind=AttendeeKind.RESOURCE)
    (booking,) = settle(copies((ALICE, occ([room, person(BOB)]))),
                        groups={"room.4@example.com": GroupMembers("room.4@example.com", "", (CAROL,))})
    assert [p.extension for p in booking.draft.participants] == ["201", "202"] and booking.draft.unmatched == ()
    lookups = plan_group_lookups([(ALICE, occ([room]))], DIRECTORY, {}, NOW, MeetingsConfig())
    assert lookups == []


def test_a_meeting_a_delegate_organized_on_behalf_of_a_pbx_user_belongs_to_that_user() -> None:
    # Dave made it in Alice's calendar: Exchange's Organizer is Alice; Dave's calendar holds no copy.
    (booking,) = settle(copies((ALICE, occ([person(BOB)], organizer=ALICE)), (BOB, occ([person(BOB)]))))
    assert (booking.draft.organizer_extension, booking.draft.room) == ("201", "801")
    assert "204" not in {p.extension for p in booking.draft.participants}


def test_an_item_without_uid_is_booked_under_its_item_id_and_keeps_the_key_when_moved() -> None:
    plain = occ([], uid="", item_id="AAMkPLAIN")
    (booking,) = settle(copies((ALICE, plain)))
    assert (booking.draft.uid, booking.draft.recurrence_key) == ("item:AAMkPLAIN", "")
    moved = replace(plain, start=TEN + timedelta(hours=2), end=TEN + timedelta(hours=3))
    (same,) = settle(copies((ALICE, moved)), [booking])
    assert same.id == booking.id and same.draft.start == TEN + timedelta(hours=2)


def test_occurrences_of_a_series_without_uid_are_keyed_by_their_series_master() -> None:
    first = occ([], uid="", item_id="occ-1", series_item_id="master", recurrence_id=TEN)
    second = replace(first, item_id="occ-2", start=TEN + timedelta(days=1), end=TEN + timedelta(days=1, hours=1),
                     recurrence_id=TEN + timedelta(days=1))
    bookings = settle(copies((ALICE, first), (ALICE, second)))
    assert sorted(b.draft.uid for b in bookings) == ["item:master", "item:master"]
    assert len({b.key for b in bookings}) == 2


# -- large meetings ----------------------------------------------------------------------------------------

def test_five_hundred_attendees_book_and_list_in_two_lines() -> None:
    guests = [person(f"guest{i:03d}@partner.org") for i in range(480)]
    staff = [person(a) for a in (BOB, CAROL, DAVE)]
    (booking,) = settle(copies((ALICE, occ([*guests, *staff]))))
    assert len(booking.draft.unmatched) == 480 and len(booking.draft.participants) == 4
    assert unmatched_lines(booking.draft) == [
        "unmatched: 480 guests (guest000@partner.org, guest001@partner.org, guest002@partner.org … and 477 more)"]
    table = render_table([booking], NOW)
    assert len(table.splitlines()) == 3 and "guest100@" not in table


# -- which addresses are looked up -------------------------------------------------------------------------

SETTINGS = MeetingsConfig(group_cache_minutes=60)


def test_only_internal_non_users_of_upcoming_conferences_are_looked_up_soonest_first() -> None:
    soon = occ([person(TEAM), person(BOB), person("guest@partner.org"), Attendee("", "x", AttendeeKind.REQUIRED,
                                                                                 ResponseType.UNKNOWN)])
    tomorrow = TEN + timedelta(days=1)
    later = replace(occ([person(ALL), person(TEAM)]), start=tomorrow, end=tomorrow + timedelta(hours=1))
    no_conference = replace(occ([person("quiet@example.com")]), location="Room 4")
    cancelled = occ([person("gone@example.com")], is_cancelled=True)
    past = replace(occ([person("old@example.com")]), start=NOW - timedelta(hours=2), end=NOW - timedelta(hours=1))
    foreign = occ([person("sales@example.com")])
    pairs = [(CAROL, later), (BOB, soon), (ALICE, no_conference), (ALICE, cancelled), (ALICE, past),
             ("stranger@example.com", foreign)]
    lookups = plan_group_lookups(pairs, DIRECTORY, {}, NOW, SETTINGS)
    assert [(x.mailbox, x.address) for x in lookups] == [(BOB, TEAM), (CAROL, ALL)]


def test_kept_answers_are_asked_again_only_when_stale() -> None:
    meeting = [(ALICE, occ([person(TEAM), person(ALL)]))]
    cache = {TEAM: GroupCacheEntry(TEAM, TEAM_GROUP, NOW - timedelta(minutes=59)),
             ALL: GroupCacheEntry(ALL, None, NOW - timedelta(minutes=60))}
    assert [x.address for x in plan_group_lookups(meeting, DIRECTORY, cache, NOW, SETTINGS)] == [ALL]
    assert known_groups(cache) == {TEAM: TEAM_GROUP}  # "not a group" is no group to expand
    every_pass = replace(SETTINGS, group_cache_minutes=0)
    assert len(plan_group_lookups(meeting, DIRECTORY, cache, NOW, every_pass)) == 2


def test_group_domains_are_the_users_domains_unless_configured_and_look_ups_are_capped() -> None:
    assert group_domains(DIRECTORY, []) == {"example.com"}
    assert group_domains(DIRECTORY, ["Example.ORG ", ""]) == {"example.org"}
    crowd = [(ALICE, occ([person(f"colleague{i}@example.com") for i in range(MAX_LOOKUPS_PER_PASS + 20)]))]
    assert len(plan_group_lookups(crowd, DIRECTORY, {}, NOW, SETTINGS)) == MAX_LOOKUPS_PER_PASS
    elsewhere = replace(SETTINGS, group_domains=["lists.example.net"])
    assert plan_group_lookups([(ALICE, occ([person("x@lists.example.net"), person(TEAM)]))], DIRECTORY, {}, NOW,
                              elsewhere)[0].address == "x@lists.example.net"
