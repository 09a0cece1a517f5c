"""The after-sync group step (plugin/booking/expansion.py) on a real store with a scripted source: what
is asked, what is kept and for how long, and that a failed look-up never drops anyone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.booking.expansion import load_group_cache, refresh_group_cache
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.directory import Directory
from pbxsync.sync.config import Config, MeetingsConfig, PbxConfig, UserConfig
from pbxsync.sync.errors import SourceAccessError, SourceError
from pbxsync.sync.model import Attendee, AttendeeKind, Folder, GroupMembers, Occurrence, ResponseType
from pbxsync.sync.plan import CalendarPlan, SyncWindow
from pbxsync.sync.store import calendar as calendar_store
from pbxsync.sync.store import folders
from pbxsync.sync.store.db import Store

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
ALICE, BOB, TEAM, OTHERS = "alice@example.com", "bob@example.com", "team@example.com", "others@example.com"
CONFIG = Config(database=":memory:", pbx=PbxConfig(rooms=[]), meetings=MeetingsConfig(group_cache_minutes=60), users=[
    UserConfig(extension="201", email=[ALICE], room="801"),
    UserConfig(extension="202", email=[BOB], sync_calendar=False)])
DIRECTORY = Directory.from_config(CONFIG)


class ScriptedSource:
    def __init__(self, answers: dict[str, GroupMembers | Exception | None]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, int]] = []

    async def expand_group(self, mailbox: str, address: str, *, max_members: int = 200) -> GroupMembers | None:
        self.asked.append((mailbox, address, max_members))
        answer = self.answers.get(address)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def put_meeting(store: Store, *invited: str) -> None:
    occ = Occurrence(item_id="m1-item", change_key="ck", uid="m1", start=NOW + timedelta(hours=2),
                     end=NOW + timedelta(hours=3), subject="Call", location="PBX AUTOCALL", organizer_email=ALICE,
                     attendees=tuple(Attendee(a, a, AttendeeKind.REQUIRED, ResponseType.NO_RESPONSE) for a in invited))
    async with store.transaction() as conn:
        await calendar_store.apply_calendar_plan(conn, ALICE, CalendarPlan(inserts=(occ,)), NOW)
        await folders.record_success(conn, ALICE, Folder.CALENDAR, NOW, "state",
                                     SyncWindow(NOW - timedelta(days=1), NOW + timedelta(days=30)))


async def test_invited_addresses_are_asked_once_and_believed_for_the_cache_time(store: Store) -> None:
    await put_meeting(store, TEAM, OTHERS, BOB, "guest@partner.org")
    source = ScriptedSource({TEAM: GroupMembers(TEAM, "Team", (BOB,)), OTHERS: None})
    assert await refresh_group_cache(store, source, DIRECTORY, CONFIG.meetings, NOW) == 2
    assert sorted(a for _, a, _ in source.asked) == [OTHERS, TEAM]  # not Bob (a user), not the outside guest
    assert {m for m, _, _ in source.asked} == {ALICE}
    cache = await load_group_cache(store)
    assert (cache[TEAM].group, cache[OTHERS].group) == (GroupMembers(TEAM, "Team", (BOB,)), None)
    await refresh_group_cache(store, source, DIRECTORY, CONFIG.meetings, NOW + timedelta(minutes=59))
    assert len(source.asked) == 2
    await refresh_group_cache(store, source, DIRECTORY, CONFIG.meetings, NOW + timedelta(minutes=60))
    assert len(source.asked) == 4


async def test_a_failed_look_up_keeps_what_was_known_and_the_booking_keeps_the_member(store: Store) -> None:
    await put_meeting(store, TEAM)
    await update_bookings(store, CONFIG, NOW, groups=ScriptedSource({TEAM: GroupMembers(TEAM, "Team", (BOB,))}))
    later = NOW + timedelta(hours=1, minutes=1)
    broken = ScriptedSource({TEAM: SourceError("EWS alice@example.com: cannot reach Exchange (ConnectionError)")})
    await update_bookings(store, CONFIG, later, groups=broken)
    assert broken.asked == [(ALICE, TEAM, 200)]
    (booking,) = await list_bookings(store, later)
    bob = next(p for p in booking.draft.participants if p.extension == "202")
    assert (bob.via_group, bob.call, bob.invited) == (TEAM, True, True)
    assert (await load_group_cache(store))[TEAM].checked_at == NOW  # the old answer, not overwritten


async def test_an_access_error_stops_the_look_ups_of_the_pass(store: Store) -> None:
    await put_meeting(store, TEAM, OTHERS, "third@example.com")
    denied = ScriptedSource({a: SourceAccessError("Graph: access denied (Authorization_RequestDenied)")
                             for a in (TEAM, OTHERS, "third@example.com")})
    assert await refresh_group_cache(store, denied, DIRECTORY, CONFIG.meetings, NOW) == 0
    assert len(denied.asked) == 1
    assert await load_group_cache(store) == {}


async def test_without_a_source_the_kept_answers_are_used(store: Store) -> None:
    await put_meeting(store, TEAM)
    await refresh_group_cache(store, ScriptedSource({TEAM: GroupMembers(TEAM, "", (BOB,))}), DIRECTORY,
                              CONFIG.meetings, NOW)
    await update_bookings(store, CONFIG, NOW)  # e.g. the daemon's re-book after the directory changed
    (booking,) = await list_bookings(store, NOW)
    assert [(p.extension, p.via_group) for p in booking.draft.participants] == [("201", ""), ("202", TEAM)]
