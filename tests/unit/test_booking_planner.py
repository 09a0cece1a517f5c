"""Every booking rule through the pure planner (docs/meetings.md). No IO, `now` is a parameter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pbxsync.plugin.booking import planner as rules
from pbxsync.plugin.booking.model import (
    ActionKind,
    Booking,
    BookingAction,
    CopyState,
    MailboxCopy,
    MailboxSync,
    Role,
    ShownState,
    StoredState,
)
from pbxsync.plugin.booking.planner import plan_bookings
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import Config, UserConfig
from pbxsync.sync.model import Attendee, AttendeeKind, Occurrence, ResponseType
from tests.support.booking_plans import apply, settle_with

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ROOMS = ["850", "851"]
ALICE, BOB, CAROL, DAVE = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
DIRECTORY = Directory.from_config(Config(users=[
    UserConfig(extension="201", email=[ALICE], name="Alice", room="801"),
    UserConfig(extension="202", email=[BOB], name="Bob", room="802"),
    UserConfig(extension="203", email=[CAROL], name="Carol", room="801"),
    UserConfig(extension="204", email=[DAVE], name="Dave", room="804", sync_calendar=False),
]))


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def person(email: str, response: ResponseType = ResponseType.ACCEPT,
           kind: AttendeeKind = AttendeeKind.REQUIRED, name: str = "") -> Attendee:
    return Attendee(email=email, name=name or email.partition("@")[0], kind=kind, response=response)


TEN = at(10)


def occ(uid: str = "m1", start: datetime = TEN, end: datetime | None = None, location: str = "PBX",
        organizer: str = ALICE, attendees: Sequence[Attendee] = (person(BOB),), **kw: object) -> Occurrence:
    return Occurrence(item_id=f"{uid}-item", change_key="ck", uid=uid, start=start,
                      end=end if end is not None else start + timedelta(hours=1), subject=f"meeting {uid}",
                      location=location, organizer_email=organizer, organizer_name="Org",
                      attendees=tuple(attendees), **kw)  # type: ignore[arg-type]


def copies(*pairs: tuple[str, Occurrence]) -> list[MailboxCopy]:
    return [MailboxCopy(mailbox, o, f"2026-12-01T07:00:0{i}+00:00") for i, (mailbox, o) in enumerate(pairs)]


def syncs(trusted: Sequence[str] = (ALICE, BOB, CAROL), failed: Sequence[str] = ()) -> dict[str, MailboxSync]:
    window = (NOW - timedelta(days=1), NOW + timedelta(days=30))
    found = {m: MailboxSync(m, True, *window) for m in trusted}
    found.update({m: MailboxSync(m, False, *window) for m in failed})
    return found


def plan(cs: Sequence[MailboxCopy], existing: Sequence[Booking] = (), mailboxes: dict[str, MailboxSync] | None = None,
         now: datetime = NOW, directory: Directory = DIRECTORY, rooms: Sequence[str] = ROOMS) -> list[BookingAction]:
    return plan_bookings(cs, syncs() if mailboxes is None else mailboxes, directory, existing, rooms, now)


def settle(cs: Sequence[MailboxCopy], existing: Sequence[Booking] = (), **kw: object) -> list[Booking]:
    return settle_with(plan, cs, existing, **kw)


def only(bookings: Sequence[Booking]) -> Booking:
    assert len(bookings) == 1
    return bookings[0]


# -- conference or not --------------------------------------------------------------------------------

def test_pbx_meeting_is_booked_in_the_organizers_room_with_the_organizer_as_host() -> None:
    actions = plan(copies((ALICE, occ())))
    assert [a.kind for a in actions] == [ActionKind.CREATE]
    d = actions[0].draft
    assert (d.state, d.room, d.autocall, d.reason) == (StoredState.SCHEDULED, "801", False, None)
    assert (d.organizer_email, d.organizer_extension) == (ALICE, "201")
    assert [(p.extension, p.role, p.call) for p in d.participants] == [
        ("201", Role.HOST, True), ("202", Role.REQUIRED, True)]
    assert d.unmatched == ()
    assert "booked in room 801" in actions[0].notes[0]


def test_pbx_autocall_auto_dials_and_other_locations_are_ignored() -> None:
    assert plan(copies((ALICE, occ(location="Room 4; PBX AUTOCALL"))))[0].draft.autocall is True
    for location in ("", "Room PBX", "PBXAUTOCALL", "Teams", "РВХ"):
        assert plan(copies((ALICE, occ(location=location)))) == []


# -- organizer and invitees -----------------------------------------------------------------------------

def test_organizer_who_is_not_a_pbx_user_gives_a_visible_rejection() -> None:
    actions = plan(copies((BOB, occ(organizer="Stranger@Elsewhere.org"))))
    assert [a.kind for a in actions] == [ActionKind.REJECT]
    d = actions[0].draft
    assert d.state is StoredState.REJECTED and d.room is None and d.organizer_extension is None
    assert d.reason == "the organizer stranger@elsewhere.org is not a PBX user"
    assert all(p.role is not Role.HOST for p in d.participants)


def test_meeting_without_organizer_address_is_rejected() -> None:
    d = plan(copies((BOB, occ(organizer=""))))[0].draft
    assert d.reason == rules.NO_ORGANIZER


def test_invitees_matched_unmatched_optional_declined_resources_and_no_email() -> None:
    attendees = [
        person("BOB@example.com", ResponseType.DECLINE),
        person(CAROL, ResponseType.TENTATIVE, AttendeeKind.OPTIONAL),
        person("guest@partner.org"),
        person("GUEST@partner.org"),  # the same address twice is listed once
        person("room-4@example.com", kind=AttendeeKind.RESOURCE),
        person(DAVE, kind=AttendeeKind.RESOURCE),  # a resource is never a participant, even if known
        Attendee(email="", name="Someone without e-mail", kind=AttendeeKind.REQUIRED,
                 response=ResponseType.NO_RESPONSE),
        person(ALICE),  # the organizer listed as attendee stays the host only
    ]
    d = only(settle(copies((ALICE, occ(attendees=attendees))))).draft
    assert [(p.extension, p.role, p.response, p.call) for p in d.participants] == [
        ("201", Role.HOST, "organizer", True),
        ("202", Role.REQUIRED, "decline", False),
        ("203", Role.OPTIONAL, "tentative", True),
    ]
    assert d.unmatched == ("guest@partner.org",)
    assert d.state is StoredState.SCHEDULED


def test_x500_addresses_are_matched_through_the_cache() -> None:
    x500 = "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=bob"
    directory = DIRECTORY.with_resolved({x500.lower(): BOB})
    d = plan(copies((ALICE, occ(attendees=[person(x500)]))), directory=directory)[0].draft
    assert [p.extension for p in d.participants] == ["201", "202"]


def test_five_thousand_attendees() -> None:
    attendees = [person(f"guest{i}@partner.org") for i in range(4_998)] + [person(BOB), person(CAROL)]
    d = only(settle(copies((ALICE, occ(attendees=attendees))))).draft
    assert len(d.unmatched) == 4_998
    assert [p.extension for p in d.participants] == ["201", "202", "203"]


# -- dedupe and the truth -------------------------------------------------------------------------------

def test_one_meeting_in_several_mailboxes_is_one_booking_and_the_organizer_copy_wins() -> None:
    organizer_copy = occ(start=at(11), location="PBX AUTOCALL")
    stale_copy = occ(start=at(10), location="PBX")
    d = only(settle(copies((BOB, stale_copy), (ALICE, organizer_copy), (CAROL, stale_copy)))).draft
    assert (d.start, d.autocall, d.organizer_copy_seen) == (at(11), True, True)
    bob = next(p for p in d.participants if p.extension == "202")
    assert bob.copy_state is CopyState.PRESENT


def test_without_the_organizer_copy_the_latest_attendee_copy_is_used() -> None:
    # Dave's calendar is not synced: only attendee copies exist.
    d = only(settle(copies((BOB, occ(organizer=DAVE, start=at(9))), (CAROL, occ(organizer=DAVE, start=at(12)))))).draft
    assert (d.start, d.organizer_extension, d.room) == (at(12), "204", "804")


def test_meetings_without_uid_are_never_merged() -> None:
    bookings = settle(copies((ALICE, replace(occ("", at(10)), item_id="one")),
                             (ALICE, replace(occ("", at(14)), item_id="two"))))
    assert sorted(b.draft.uid for b in bookings) == ["item:one", "item:two"]


def test_copies_from_mailboxes_that_are_not_synced_users_are_ignored() -> None:
    assert plan(copies(("former-user@example.com", occ()))) == []


def test_every_occurrence_of_a_series_is_its_own_booking_and_moves_alone() -> None:
    series = [occ(start=at(10, day=d), recurrence_id=at(10, day=d)) for d in (2, 3, 4)]
    bookings = settle(copies(*[(ALICE, o) for o in series]))
    assert [b.draft.start for b in bookings] == [at(10, day=2), at(10, day=3), at(10, day=4)]
    assert len({b.key for b in bookings}) == 3
    moved = [series[0], replace(series[1], start=at(15, day=3), end=at(16, day=3)), series[2]]
    actions = plan(copies(*[(ALICE, o) for o in moved]), bookings)
    assert [(a.kind, a.booking_id) for a in actions] == [(ActionKind.UPDATE, bookings[1].id)]
    assert actions[0].draft.start == at(15, day=3)


# -- moves and cancellation -----------------------------------------------------------------------------

def test_moved_meeting_moves_its_booking_with_a_history_note() -> None:
    bookings = settle(copies((ALICE, occ())))
    actions = plan(copies((ALICE, occ(start=at(14)))), bookings)
    assert [(a.kind, a.booking_id) for a in actions] == [(ActionKind.UPDATE, bookings[0].id)]
    assert actions[0].draft.start == at(14)
    assert any(n.startswith("moved from 2026-12-01T10:00:00+00:00") for n in actions[0].notes)


def test_cancelled_flag_on_any_copy_cancels_once_and_for_good() -> None:
    bookings = settle(copies((ALICE, occ()), (BOB, occ())))
    cancelled_copy = copies((ALICE, occ()), (BOB, occ(is_cancelled=True)))
    actions = plan(cancelled_copy, bookings)
    assert [(a.kind, a.draft.reason) for a in actions] == [(ActionKind.CANCEL, rules.CANCELLED_IN_EXCHANGE)]
    bookings = apply(bookings, actions)
    assert plan(cancelled_copy, bookings) == []  # idempotent
    # Bob removes the cancelled meeting; Alice's (stale) copy must not bring the booking back.
    assert plan(copies((ALICE, occ())), bookings, mailboxes=syncs(trusted=(BOB, CAROL), failed=(ALICE,))) == []


def test_cancelled_meeting_never_seen_before_is_not_booked() -> None:
    assert plan(copies((ALICE, occ(is_cancelled=True)))) == []


def test_organizer_deleting_the_meeting_cancels_it() -> None:
    bookings = settle(copies((ALICE, occ()), (BOB, occ())))
    for remaining in ([], copies((BOB, occ()))):  # attendees may not have heard yet
        actions = plan(remaining, bookings)
        assert [(a.kind, a.draft.reason) for a in actions] == [(ActionKind.CANCEL, rules.ORGANIZER_DELETED)]


def test_a_failed_organizer_sync_never_cancels() -> None:
    bookings = settle(copies((ALICE, occ()), (BOB, occ())))
    failed = syncs(trusted=(BOB, CAROL), failed=(ALICE,))
    assert plan([], bookings, mailboxes=failed) == []
    assert plan(copies((BOB, occ(start=at(13)))), bookings, mailboxes=failed) == []
    no_status_yet = syncs(trusted=(BOB, CAROL))
    assert plan([], bookings, mailboxes=no_status_yet) == []


def test_a_window_that_does_not_cover_the_meeting_proves_nothing() -> None:
    bookings = settle(copies((ALICE, occ(start=at(10, day=20)))))
    narrow = {ALICE: MailboxSync(ALICE, True, NOW - timedelta(days=1), NOW + timedelta(days=7))}
    assert plan([], bookings, mailboxes=narrow) == []


def test_attendee_deleting_their_copy_only_drops_that_attendee() -> None:
    bookings = settle(copies((ALICE, occ()), (BOB, occ())))
    actions = plan(copies((ALICE, occ())), bookings)
    assert [a.kind for a in actions] == [ActionKind.UPDATE]
    bob = next(p for p in actions[0].draft.participants if p.extension == "202")
    assert (bob.copy_state, bob.call, bob.shown_response) == (CopyState.DELETED, False, "deleted")
    assert actions[0].draft.state is StoredState.SCHEDULED
    # ...but not when Bob's calendar sync failed
    assert plan(copies((ALICE, occ())), bookings, mailboxes=syncs(trusted=(ALICE,), failed=(BOB,))) == []


def test_when_the_organizer_calendar_is_not_synced_a_meeting_gone_everywhere_is_cancelled() -> None:
    meeting = occ(organizer=DAVE, attendees=[person(BOB), person(CAROL)])
    bookings = settle(copies((BOB, meeting), (CAROL, meeting)))
    assert plan(copies((CAROL, meeting)), bookings)[0].kind is ActionKind.UPDATE  # only Bob dropped
    assert plan([], bookings, mailboxes=syncs(trusted=(BOB,), failed=(CAROL,))) == []
    actions = plan([], bookings)
    assert [(a.kind, a.draft.reason) for a in actions] == [(ActionKind.CANCEL, rules.GONE_EVERYWHERE)]


def test_location_no_longer_pbx_cancels_and_pbx_again_books_again() -> None:
    bookings = settle(copies((ALICE, occ())))
    actions = plan(copies((ALICE, occ(location="Teams"))), bookings)
    assert [(a.kind, a.draft.reason) for a in actions] == [(ActionKind.CANCEL, rules.NOT_A_CONFERENCE)]
    bookings = apply(bookings, actions)
    actions = plan(copies((ALICE, occ())), bookings)
    assert [(a.kind, a.booking_id, a.draft.state) for a in actions] == [
        (ActionKind.UPDATE, bookings[0].id, StoredState.SCHEDULED)]
    assert actions[0].notes[0].startswith("booked again")


def test_uninvited_participant_is_kept_but_not_called_and_reinvited_later() -> None:
    bookings = settle(copies((ALICE, occ(attendees=[person(BOB), person(CAROL)]))))
    bookings = settle(copies((ALICE, occ(attendees=[person(BOB)]))), bookings)
    carol = next(p for p in bookings[0].draft.participants if p.extension == "203")
    assert (carol.invited, carol.call) == (False, False)
    bookings = settle(copies((ALICE, occ(attendees=[person(BOB), person(CAROL)]))), bookings)
    carol = next(p for p in bookings[0].draft.participants if p.extension == "203")
    assert (carol.invited, carol.call) == (True, True)


def test_an_uninvited_participant_whose_copy_is_gone_is_settled_in_one_pass() -> None:
    """Found by the state machine: the uninvited person's copy state must be brought up to date in the same
    pass that drops them, or the next pass (with only older attendee copies) changes the booking again."""
    meeting = occ(organizer=DAVE, attendees=[person(ALICE), person(BOB)])
    bookings = settle(copies((ALICE, meeting), (BOB, meeting)))
    uninvited = occ(organizer=DAVE, attendees=[person(BOB)])
    bookings = apply(bookings, plan(copies((BOB, uninvited)), bookings))
    alice = next(p for p in bookings[0].draft.participants if p.extension == "201")
    assert (alice.invited, alice.copy_state) == (False, CopyState.DELETED)
    assert plan(copies((BOB, uninvited)), bookings) == []


def test_a_cancelled_booking_is_not_touched_by_older_attendee_copies() -> None:
    """Found by the state machine: moved to Teams (cancelled) while an attendee was uninvited; the next pass,
    holding only the older attendee copy, must not change the cancelled booking again."""
    meeting = occ(organizer=DAVE, attendees=[person(ALICE), person(CAROL)])
    bookings = settle(copies((ALICE, meeting), (CAROL, meeting)))
    teams = occ(organizer=DAVE, location="Teams", attendees=[person(ALICE)])
    bookings = apply(bookings, plan(copies((ALICE, teams)), bookings))
    assert bookings[0].draft.state is StoredState.CANCELLED
    later = replace(bookings[0], updated_at="2026-12-01T07:30:00+00:00")
    assert plan(copies((ALICE, teams)), [later]) == []


def test_organizer_removed_from_the_directory_turns_the_booking_into_a_rejection() -> None:
    bookings = settle(copies((ALICE, occ()), (BOB, occ())))
    without_alice = Directory.from_entries([e for e in DIRECTORY.entries if e.extension != "201"])
    actions = plan(copies((ALICE, occ()), (BOB, occ())), bookings, directory=without_alice)
    assert [(a.kind, a.draft.state) for a in actions] == [(ActionKind.REJECT, StoredState.REJECTED)]
    assert actions[0].draft.reason == "the organizer alice@example.com is not a PBX user"


# -- rooms -------------------------------------------------------------------------------------------

def test_overlapping_bookings_get_another_free_room_or_a_conflict() -> None:
    meetings = copies((ALICE, occ("a", at(10))), (CAROL, occ("c", at(10, 30), organizer=CAROL)),
                      (ALICE, occ("e", at(10, 45))))
    bookings = settle(meetings, rooms=["850"])
    by_uid = {b.draft.uid: b.draft for b in bookings}
    assert (by_uid["a"].room, by_uid["c"].room) == ("801", "850")
    assert by_uid["e"].state is StoredState.REJECTED and by_uid["e"].room is None
    assert by_uid["e"].reason == ('room conflict: room 801 is taken by "meeting a" of 201 '
                                  '(2026-12-01T10:00:00+00:00..2026-12-01T11:00:00+00:00) at that time '
                                  'and no other room in [pbx] rooms is free')


def test_back_to_back_meetings_share_a_room() -> None:
    bookings = settle(copies((ALICE, occ("a", at(10))), (CAROL, occ("c", at(11), organizer=CAROL))))
    assert [b.draft.room for b in bookings] == ["801", "801"]


def test_the_earlier_created_booking_keeps_its_room() -> None:
    bookings = settle(copies((CAROL, occ("c", at(14), organizer=CAROL))))
    bookings = settle(copies((CAROL, occ("c", at(14), organizer=CAROL)), (ALICE, occ("a", at(10)))), bookings)
    assert [b.draft.room for b in bookings] == ["801", "801"]
    # The later-created booking moves onto the earlier one's time: it is the one that changes room.
    moved = copies((CAROL, occ("c", at(14), organizer=CAROL)), (ALICE, occ("a", at(14))))
    actions = plan(moved, bookings)
    assert [(a.booking_id, a.draft.room) for a in actions] == [(bookings[1].id, "850")]
    assert "room 801 -> 850" in actions[0].notes
    # And when the earlier one moves onto the later one, the later one still yields.
    moved = copies((CAROL, occ("c", at(10), organizer=CAROL)), (ALICE, occ("a", at(10))))
    actions = plan(moved, bookings)
    assert sorted((a.booking_id, a.draft.room) for a in actions) == [(bookings[0].id, "801"), (bookings[1].id, "850")]


def test_a_running_booking_keeps_its_room_even_against_an_earlier_one() -> None:
    bookings = settle(copies((CAROL, occ("c", at(14), organizer=CAROL))))
    bookings = settle(copies((CAROL, occ("c", at(14), organizer=CAROL)), (ALICE, occ("a", at(7, 30)))), bookings)
    assert [(b.draft.uid, b.draft.room) for b in bookings] == [("c", "801"), ("a", "801")]
    # The earlier-created one moves onto the running one (started 07:30, now 08:00): it yields.
    actions = plan(copies((CAROL, occ("c", at(8), organizer=CAROL)), (ALICE, occ("a", at(7, 30)))), bookings)
    assert [(a.booking_id, a.draft.room) for a in actions] == [(bookings[0].id, "850")]


def test_no_room_anywhere() -> None:
    no_room = Directory.from_config(Config(users=[UserConfig(extension="201", email=[ALICE])]))
    d = plan(copies((ALICE, occ())), directory=no_room, rooms=[])[0].draft
    assert d.state is StoredState.REJECTED
    assert d.reason == "no room: the organizer has no room and [pbx] rooms is empty"
    d = plan(copies((ALICE, occ())), directory=no_room, rooms=["850"])[0].draft
    assert d.room == "850"



# -- rooms the admin takes away -------------------------------------------------------------------------

POOL_ONLY = Directory.from_config(Config(users=[UserConfig(extension="201", email=[ALICE])]))


def test_an_unchanged_booking_whose_room_left_the_pool_moves_to_a_free_pool_room_at_the_next_pass() -> None:
    meeting = copies((ALICE, occ()))
    (booked,) = settle(meeting, directory=POOL_ONLY, rooms=["850", "851"])
    assert booked.draft.room == "850"
    actions = plan(meeting, [booked], directory=POOL_ONLY, rooms=["851"])
    assert [(a.kind, a.booking_id, a.draft.room, a.draft.state) for a in actions] == [
        (ActionKind.UPDATE, booked.id, "851", StoredState.SCHEDULED)]
    assert actions[0].notes == ("room 850 is no longer in [pbx] rooms or the organizer's room", "room 850 -> 851")
    assert plan(meeting, apply([booked], actions), directory=POOL_ONLY, rooms=["851"]) == []


def test_an_unchanged_booking_whose_room_left_the_pool_is_rejected_with_the_reason_when_none_is_free() -> None:
    meeting = copies((ALICE, occ()))
    (booked,) = settle(meeting, directory=POOL_ONLY, rooms=["850"])
    actions = plan(meeting, [booked], directory=POOL_ONLY, rooms=[])
    assert [(a.kind, a.booking_id, a.draft.room, a.draft.state) for a in actions] == [
        (ActionKind.REJECT, booked.id, None, StoredState.REJECTED)]
    assert actions[0].draft.reason == "no room: the organizer has no room and [pbx] rooms is empty"
    assert actions[0].notes == ("room 850 is no longer in [pbx] rooms or the organizer's room",
                                "rejected: no room: the organizer has no room and [pbx] rooms is empty")
    # The reason stays the same at every later pass, and the room coming back books the meeting again.
    rejected = apply([booked], actions)
    assert plan(meeting, rejected, directory=POOL_ONLY, rooms=[]) == []
    again = plan(meeting, rejected, directory=POOL_ONLY, rooms=["850"])
    assert [(a.draft.state, a.draft.room) for a in again] == [(StoredState.SCHEDULED, "850")]


def test_a_booking_whose_room_left_the_pool_yields_to_bookings_in_allowed_rooms() -> None:
    both = copies((ALICE, occ("a")), (CAROL, occ("c", organizer=CAROL)))
    bookings = settle(both, rooms=["850"])
    assert [(b.draft.uid, b.draft.room) for b in bookings] == [("a", "801"), ("c", "850")]
    actions = plan(both, bookings, rooms=[])  # Carol's own room 801 is Alice's at that time
    assert [(a.booking_id, a.draft.state, a.draft.room) for a in actions] == [
        (bookings[1].id, StoredState.REJECTED, None)]
    assert str(actions[0].draft.reason).startswith("room conflict: room 801 is taken")
    assert actions[0].notes[0] == "room 850 is no longer in [pbx] rooms or the organizer's room"


def test_a_running_booking_keeps_a_room_that_left_the_pool() -> None:
    meeting = copies((ALICE, occ(start=at(7, 30))))
    (booked,) = settle(meeting, directory=POOL_ONLY, rooms=["850"])
    assert plan(meeting, [booked], directory=POOL_ONLY, rooms=[]) == []


def test_a_booking_whose_organizer_room_changed_moves_to_the_new_room() -> None:
    meeting = copies((ALICE, occ()))
    (booked,) = settle(meeting, rooms=[])
    assert booked.draft.room == "801"
    moved_alice = Directory.from_config(Config(users=[
        UserConfig(extension="201", email=[ALICE], name="Alice", room="805"),
        UserConfig(extension="202", email=[BOB], name="Bob", room="802")]))
    actions = plan(meeting, [booked], directory=moved_alice, rooms=[])
    assert [(a.booking_id, a.draft.room) for a in actions] == [(booked.id, "805")]


# -- odd times ---------------------------------------------------------------------------------------

def test_odd_times_have_defined_outcomes() -> None:
    cases = {
        "backwards": (occ("backwards", at(11), at(10)), rules.ENDS_BEFORE_START),
        "zero": (occ("zero", at(10), at(10)), rules.NO_DURATION),
        "allday": (occ("allday", at(0, day=2), at(0, day=3), is_all_day=True), rules.ALL_DAY),
    }
    for uid, (o, reason) in cases.items():
        d = plan(copies((ALICE, o)))[0].draft
        assert (uid, d.state, d.reason) == (uid, StoredState.REJECTED, reason)
    multi_day = plan(copies((ALICE, occ("multi", at(9), at(17, day=3)))))[0].draft
    assert (multi_day.state, multi_day.room) == (StoredState.SCHEDULED, "801")


def test_dst_transitions_are_plain_utc_instants() -> None:
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    # 01:30-03:30 Berlin local on the spring-forward night is one real hour.
    start = datetime(2027, 3, 28, 1, 30, tzinfo=berlin).astimezone(UTC)
    end = datetime(2027, 3, 28, 3, 30, tzinfo=berlin).astimezone(UTC)
    ny_start = datetime(2026, 11, 1, 1, 30, tzinfo=new_york, fold=1).astimezone(UTC)  # the repeated hour
    meetings = copies((ALICE, occ("berlin", start, end, timezone="W. Europe Standard Time")),
                      (ALICE, occ("ny", ny_start, ny_start + timedelta(hours=1), timezone="America/New_York")))
    bookings = settle(meetings, now=datetime(2026, 10, 1, tzinfo=UTC))
    berlin_booking = next(b.draft for b in bookings if b.draft.uid == "berlin")
    assert (berlin_booking.end - berlin_booking.start) == timedelta(hours=1)
    assert berlin_booking.timezone == "W. Europe Standard Time"
    ny = next(b.draft for b in bookings if b.draft.uid == "ny")
    assert ny.start == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


# -- history and states ------------------------------------------------------------------------------

def test_past_bookings_are_history_and_never_change() -> None:
    bookings = settle(copies((ALICE, occ())))
    later = at(12)
    assert bookings[0].shown_state(later) is ShownState.DONE
    assert bookings[0].shown_state(at(10, 30)) is ShownState.ACTIVE
    assert bookings[0].shown_state(NOW) is ShownState.SCHEDULED
    assert plan(copies((ALICE, occ(start=at(15)))), bookings, now=later) == []
    assert plan([], bookings, now=later) == []


def test_a_meeting_already_over_when_first_seen_is_not_booked() -> None:
    assert plan(copies((ALICE, occ(start=at(6))))) == []


def test_a_stale_attendee_copy_cannot_cancel_after_the_fresher_copy_is_deleted() -> None:
    """The organizer's calendar is not synced. Carol's fresh copy (now PBX) booked the meeting; Bob's copy is
    older (from before the organizer added PBX). Carol deleting her copy must only drop Carol."""
    dave_meeting = occ(organizer=DAVE, attendees=(person(BOB), person(CAROL)))
    bob_stale = MailboxCopy(BOB, replace(dave_meeting, item_id="b", location="Room 4"), "2026-12-01T07:00:00+00:00")
    carol_fresh = MailboxCopy(CAROL, replace(dave_meeting, item_id="c"), "2026-12-01T07:00:05+00:00")
    (created,) = plan([bob_stale, carol_fresh])
    booked = Booking(1, created.draft, updated_at="2026-12-01T07:00:06+00:00")
    assert booked.draft.state is StoredState.SCHEDULED
    actions = plan([bob_stale], [booked])
    assert [a.kind for a in actions] == [ActionKind.UPDATE]
    after = actions[0].draft
    assert after.state is StoredState.SCHEDULED and after.location == "PBX"
    states = {p.extension: p.copy_state for p in after.participants}
    assert states["203"] is CopyState.DELETED and states["202"] is CopyState.PRESENT
    # A copy that changed after the booking did is evidence again: Bob's newer copy without PBX cancels.
    bob_newer = replace(bob_stale, updated_at="2026-12-01T07:00:09+00:00")
    assert [a.draft.state for a in plan([bob_newer], [booked])] == [StoredState.CANCELLED]
