"""*My conferences* (aiohttp test client, the AMI simulator): who sees which booking and what of it, the
live room, and the host's controls."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pbxsync.plugin.ami.sim_world import Member
from pbxsync.plugin.ami.simulator import AsteriskSimulator
from pbxsync.plugin.autocall.planner import Outcome, PlannedCall
from pbxsync.plugin.autocall.store import call_states, record_outcome, record_planned
from pbxsync.plugin.booking.model import Booking, StoredState
from pbxsync.plugin.booking.privacy import PRIVATE_SUBJECT
from pbxsync.plugin.booking.store import booking_history
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.model import utc_text
from pbxsync.sync.store.db import Store
from tests.support.web_employee import XSS, Client, book, employee_config, meeting, signed_in, simulated_pbx
from tests.support.web_portal import make_context, portal_client

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Office:
    store: Store
    sim: AsteriskSimulator
    running: Booking  # Bob (102) hosts, Ada (101) and Eve (103) invited, room 800, started 5 minutes ago
    others: Booking  # Ada's meeting with Eve only, tomorrow
    rejected: Booking  # Bob's meeting that got no room
    private: Booking  # Bob's private meeting next week


def in_room(sim: AsteriskSimulator, extension: str, name: str, *, admin: bool = False) -> Member:
    member = Member(f"PJSIP/{extension}-0000000{extension[-1]}", f"1700000000.{extension}", extension, name,
                    "pbxsync-rooms", "800", "1", admin=admin, marked=admin)
    sim.add_member("800", member)
    return member


async def add_private_copy(store: Store, booking: Booking, mailbox: str, subject: str) -> None:
    d = booking.draft
    await store.conn.execute(
        "INSERT INTO occurrences (mailbox, item_id, change_key, uid, occurrence_key, recurrence_id, start_utc, "
        "end_utc, timezone, subject, location, organizer_email, organizer_name, attendees, is_cancelled, "
        "is_all_day, updated_at) VALUES (?, ?, 'ck', ?, ?, NULL, ?, ?, 'UTC', ?, 'PBX', ?, '', '[]', 0, 0, ?)",
        (mailbox, f"item-{booking.id}", d.uid, utc_text(d.start), utc_text(d.start), utc_text(d.end), subject,
         d.organizer_email, utc_text(NOW)))
    await store.conn.commit()


@asynccontextmanager
async def office(store: Store) -> AsyncIterator[tuple[Office, FakeClock, Client]]:
    """The bookings above, Bob and Ada in room 800, the portal with the simulator as its AMI link."""
    clock = FakeClock(NOW)
    running = await book(store, meeting("102", ["101", "103"], NOW - timedelta(minutes=5), subject=f"Q4 {XSS}"), NOW)
    others = await book(store, meeting("101", ["103"], NOW + timedelta(days=1), "801", subject="Ada and Eve"), NOW)
    rejected = await book(store, meeting("102", ["103"], NOW + timedelta(hours=2), state=StoredState.REJECTED,
                                         reason="all rooms are taken at that time", subject="No room"), NOW)
    private = await book(store, meeting("102", ["103"], NOW + timedelta(days=7), subject=PRIVATE_SUBJECT,
                                        private=True), NOW)
    await add_private_copy(store, private, "bob@example.com", "Salary talk")
    await store.conn.execute("INSERT INTO booking_pins (booking_id, pin, created_at) VALUES (?, '482913', ?)",
                             (running.id, utc_text(NOW)))
    await store.conn.commit()
    planned = PlannedCall(running.id, running.draft.participants[2].id or 0, "103", 1, "pbxsync-test-103-1", False)
    await record_planned(store, planned, NOW)
    await record_outcome(store, planned.channel_id, Outcome.BUSY, "5", "", NOW)
    async with simulated_pbx() as (sim, ami):
        in_room(sim, "102", "Bob Builder", admin=True)
        in_room(sim, "101", "Ada Admin")
        ctx = await make_context(store, employee_config(), clock=clock)
        ctx.ami.publish(ami)
        async with portal_client(ctx) as client:
            yield Office(store, sim, running, others, rejected, private), clock, client


async def page(client: Client, path: str) -> tuple[int, str]:
    response = await client.get(path, allow_redirects=False)
    return response.status, await response.text()


async def host(client: Client, token: str, booking: Booking, action: str, target: str = "") -> tuple[int, str]:
    response = await client.post(f"/conferences/{booking.id}/host",
                                 data={"csrf": token, "action": action, "target": target})
    return response.status, await response.text()


async def test_the_list_shows_the_users_own_bookings_with_reasons_in_words(store: Store) -> None:
    async with office(store) as (o, _, client):
        await signed_in(client, "102")
        status, html = await page(client, "/my/conferences")
        assert status == 200
        shown = re.findall(r'data-conference="(\d+)"', html)
        assert sorted(map(int, shown)) == sorted([o.running.id, o.rejected.id, o.private.id])
        assert "Running now" in html and "Not booked: <span class=\"reason\">all rooms are taken at that time" in html
        assert "Ada and Eve" not in html
        assert "Salary talk" in html  # Bob's own copy of his private meeting
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


async def test_a_private_subject_shows_only_to_the_owner_of_the_copy(store: Store) -> None:
    async with office(store) as (o, _, client):
        await signed_in(client, "103")
        status, html = await page(client, f"/conferences/{o.private.id}")
        assert status == 200 and PRIVATE_SUBJECT in html and "Salary talk" not in html
        _, listing = await page(client, "/my/conferences")
        assert "Salary talk" not in listing


async def test_a_participant_sees_room_pin_responses_and_autocall_outcomes(store: Store) -> None:
    async with office(store) as (o, _, client):
        await signed_in(client, "103")
        status, html = await page(client, f"/conferences/{o.running.id}")
        assert status == 200
        assert re.search(r'id="dial-in">800<', html) and re.search(r'id="pin">482913<', html)
        assert "Accepted" in html and "Organizer" in html and ">Busy" in html
        assert re.findall(r'class="member-name">([^<]*)<', html) == ["User 102", "User 101"]  # in the room now
        assert 'name="action"' not in html  # a participant has no host controls
        assert "&lt;img src=x" in html and "<img src=x" not in html


async def test_another_users_conference_is_refused_and_an_admin_sees_no_pin(store: Store) -> None:
    async with office(store) as (o, _, client):
        await signed_in(client, "102")
        assert (await page(client, f"/conferences/{o.others.id}"))[0] == 403
        assert (await page(client, f"/conferences/{o.others.id}/room.json"))[0] == 403
        assert (await page(client, "/conferences/99999"))[0] == 404
        assert (await page(client, "/conferences/1%20OR%201=1"))[0] == 404


async def test_an_admin_outside_the_meeting_reads_it_without_pin_or_room(store: Store) -> None:
    async with office(store) as (o, _, client):
        await signed_in(client, "101")  # admin, not invited to Bob's rejected and private meetings
        status, html = await page(client, f"/conferences/{o.rejected.id}")
        assert status == 200 and "all rooms are taken" in html
        others_html = (await page(client, f"/conferences/{o.private.id}"))[1]
        assert 'id="pin"' not in others_html and 'id="dial-in"' not in others_html


async def test_the_room_json_lists_members_matched_to_participants(store: Store) -> None:
    async with office(store) as (o, _, client):
        await signed_in(client, "103")
        data = await (await client.get(f"/conferences/{o.running.id}/room.json")).json()
        assert data["running"] is True and data["host"] is False
        assert [(m["extension"], m["name"], m["host"]) for m in data["room"]["members"]] == [
            ("102", "User 102", True), ("101", "User 101", False)]
        assert {p["extension"]: p["outcome"] for p in data["participants"]} == {
            "102": "", "101": "", "103": "Busy"}


async def test_the_host_mutes_unmutes_kicks_locks_and_ends_and_each_is_audited(store: Store) -> None:
    async with office(store) as (o, _, client):
        token = await signed_in(client, "102")
        ada = o.sim.members("800")[1]
        status, html = await host(client, token, o.running, "mute", ada.channel)
        assert status == 200 and "User 101 is muted." in html and ada.muted
        assert "Unmute" in html
        assert (await host(client, token, o.running, "unmute", ada.channel))[0] == 200 and not ada.muted
        assert (await host(client, token, o.running, "lock"))[0] == 200 and o.sim.rooms["800"].locked
        assert (await host(client, token, o.running, "unlock"))[0] == 200 and not o.sim.rooms["800"].locked
        status, html = await host(client, token, o.running, "kick", ada.channel)
        assert status == 200 and "User 101 was removed from the room." in html
        await asyncio.sleep(0)  # the simulator lets members leave after its answer, like Asterisk
        assert [m.channel for m in o.sim.members("800")] == ["PJSIP/102-00000002"]
        status, html = await host(client, token, o.running, "end")
        assert status == 200 and "ended for everybody" in html
        history = [e.detail for e in await booking_history(store, o.running.id)]
        assert history[1:] == ["host 102 in the portal: muted PJSIP/101-00000001",
                               "host 102 in the portal: unmuted PJSIP/101-00000001",
                               "host 102 in the portal: room locked", "host 102 in the portal: room unlocked",
                               "host 102 in the portal: removed PJSIP/101-00000001",
                               "host 102 in the portal: conference ended"]


async def test_the_host_calls_a_participant_again_through_autocalls_path(store: Store) -> None:
    async with office(store) as (o, _, client):
        token = await signed_in(client, "102")
        status, html = await host(client, token, o.running, "call", "103")
        assert status == 200 and "Calling User 103 again." in html
        for _ in range(200):
            states = await call_states(store, [o.running.id])
            if states[(o.running.id, "103")].joined:
                break
            await asyncio.sleep(0.01)
        assert (states[(o.running.id, "103")].outcome, states[(o.running.id, "103")].attempts) == ("answered", 2)
        (sent,) = o.sim.originates
        assert (sent.get("Channel"), sent.get("Context")) == ("PJSIP/103", "pbxsync-autocall")
        assert sent.get("ChannelId").startswith(f"pbxsync-{o.running.id}-")
        # somebody already in the room is not called again; neither is a stranger
        assert "already in the room" in (await host(client, token, o.running, "call", "101"))[1]
        assert "not a participant" in (await host(client, token, o.running, "call", "999"))[1]
        assert len(o.sim.originates) == 1


async def test_calling_again_shares_the_hosts_click_to_call_limit(store: Store) -> None:
    # A host could otherwise ring a colleague's phone all day, one "call again" after another.
    async with office(store) as (o, _, client):
        token = await signed_in(client, "102")
        for _ in range(6):
            assert "not a participant" in (await host(client, token, o.running, "call", "999"))[1]
        status, html = await host(client, token, o.running, "call", "103")
        assert status == 429 and "Too many calls" in html
        assert o.sim.originates == []
        assert (await host(client, token, o.running, "mute", o.sim.members("800")[1].channel))[0] == 200


async def test_host_controls_are_only_for_the_host_while_it_runs(store: Store) -> None:
    async with office(store) as (o, _, client):
        token = await signed_in(client, "103")
        bob = o.sim.members("800")[0]
        assert (await host(client, token, o.running, "kick", bob.channel))[0] == 403
        assert (await host(client, token, o.running, "end"))[0] == 403
        assert len(o.sim.members("800")) == 2


async def test_hostile_or_late_host_actions_do_nothing(store: Store) -> None:
    async with office(store) as (o, clock, client):
        token = await signed_in(client, "102")
        assert (await host(client, token, o.running, "shutdown"))[0] == 400
        status, html = await host(client, token, o.running, "kick", "PJSIP/999-00000009")
        assert status == 200 and "no longer in the room" in html
        status, _ = await host(client, token, o.running, "kick", "all")  # not a member's key: nobody is kicked
        assert len(o.sim.members("800")) == 2
        assert (await host(client, token, o.private, "end"))[0] == 409  # not running
        no_token = await client.post(f"/conferences/{o.running.id}/host", data={"action": "end"})
        assert no_token.status == 403
        clock.advance(3600)  # over
        assert (await host(client, token, o.running, "end"))[0] == 409
        assert len(o.sim.members("800")) == 2
