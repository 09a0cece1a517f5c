"""The employee pages' test data: a phonebook, bookings with calls, a simulated PBX linked to the portal,
and a signed-in aiohttp test client (tests/support/web_portal.py has the portal itself).

Users (web_portal.USERS): 101 Ada (admin, ada@example.com), 102 Bob (bob@example.com), 103 Eve.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.plugin.ami.sim_world import Phone, PhoneBehaviour
from pbxsync.plugin.ami.simulator import AsteriskSimulator, SimUser
from pbxsync.plugin.booking.model import (
    ActionKind,
    Booking,
    BookingAction,
    BookingDraft,
    Participant,
    Role,
    StoredState,
)
from pbxsync.plugin.booking.store import apply_actions, booking_by_id
from pbxsync.plugin.web.context import WebContext
from pbxsync.sync.config import Config, LdapConfig, PbxConfig
from pbxsync.sync.model import Contact, PhoneKind
from pbxsync.sync.phones import phone_number
from pbxsync.sync.plan import ContactPlan
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.contacts import apply_contact_plan
from pbxsync.sync.store.db import Store
from tests.support.web_portal import password_of, portal_config

XSS = '<img src=x onerror="document.title=\'pwned\'"><script>alert(1)</script>'
Client = TestClient[Any, Any]
AMI_USER, AMI_SECRET = "pbxsync", "ami-secret"
# The real Asterisk's click-to-call context ([web] click_to_call_context): logs the number, then stays up.
CLICK_TO_CALL_CONTEXT = "pbxsync-outbound"
CLICK_TO_CALL_DIALPLAN = f"""\
[{CLICK_TO_CALL_CONTEXT}]
exten => _+X.,1,NoOp(click to call dials ${{EXTEN}})
 same => n,Answer()
 same => n,Wait(600)
 same => n,Hangup()
"""


@dataclass(frozen=True)
class Card:
    name: str
    company: str = ""
    numbers: tuple[tuple[str, str], ...] = ()  # (kind, as typed)


# Bob's own phonebook, Ada's (shared or not, by the config) and nobody else's.
BOB_CARDS = (Card("Carla Kunde", "ACME GmbH", (("business", "+49 30 1234 5678"), ("mobile", "0171 5550199"))),
             Card("Dieter Lieferant", "Globex AG", (("business", "089 98765-43"),)),
             Card(XSS, "Evil & Co <b>", (("business", "+49 40 555 0100"),)),
             Card("Internal Helpdesk", "", (("business", "4711"),)),
             Card("Odd Number", "", (("other", "call me maybe"),)))
ADA_CARDS = (Card("Ada's Private Friend", "", (("mobile", "+49 151 2345 6700"),)),)


async def add_cards(store: Store, mailbox: str, cards: Sequence[Card], now: datetime) -> None:
    contacts = tuple(Contact(f"{mailbox}-{i}", "ck1", c.name, company=c.company, folder="",
                             phones=tuple(phone_number(PhoneKind(k), raw, "DE") for k, raw in c.numbers))
                     for i, c in enumerate(cards))
    async with store.transaction() as conn:
        await apply_contact_plan(conn, mailbox, ContactPlan(inserts=contacts), now)


async def fill_phonebook(store: Store, now: datetime) -> None:
    await add_cards(store, "bob@example.com", BOB_CARDS, now)
    await add_cards(store, "ada@example.com", ADA_CARDS, now)


def employee_config(*, shared: Sequence[str] = (), pbx_port: int = 5038, database: str = ":memory:",
                    dial: str = "PJSIP/{extension}", **web: Any) -> Config:
    """The portal config with `[ldap] shared_mailboxes = shared` (default: nobody's contacts are shared)
    and an AMI link to 127.0.0.1:`pbx_port`."""
    config = portal_config(database, **web)
    return replace(config, ldap=LdapConfig(shared_mailboxes=list(shared)),
                   pbx=PbxConfig(port=pbx_port, username=AMI_USER, secret=Secret(AMI_SECRET), dial=dial,
                                 rooms=["800", "801"]))


@asynccontextmanager
async def simulated_pbx(phones: Sequence[Phone] = ()) -> AsyncIterator[tuple[AsteriskSimulator, AmiClient]]:
    """The AMI simulator (phones 101-103 answer at once unless given) and a client logged in to it."""
    sim = AsteriskSimulator(users=[SimUser(AMI_USER, AMI_SECRET)], login_fail_delay=0.0,
                            phones=list(phones) or [Phone(e, PhoneBehaviour.ANSWER) for e in ("101", "102", "103")])
    port = await sim.start()
    client = AmiClient(AmiSettings(port=port, username=AMI_USER, secret=Secret(AMI_SECRET), action_timeout=5.0,
                                   backoff_initial=0.05))
    client.start()
    try:
        assert await client.wait_connected(10.0)
        yield sim, client
    finally:
        await client.stop()
        await sim.stop()


def use_config(ctx: WebContext, config: Config) -> None:
    """Give a running portal another config."""
    ctx.current_config = lambda: config


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def signed_in(client: Client, extension: str) -> str:
    """Sign `client` in as `extension`; returns the session's CSRF token."""
    form = await client.get("/signin")
    response = await client.post("/signin", data={"extension": extension, "password": password_of(extension),
                                                  "csrf": csrf_of(await form.text()), "next": "/my/contacts"})
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


def meeting(organizer: str, guests: Sequence[str], start: datetime, room: str = "800", *,
            subject: str = "Weekly sync", minutes: int = 30, state: StoredState = StoredState.SCHEDULED,
            reason: str | None = None, private: bool = False, uid: str = "") -> BookingDraft:
    people = tuple(Participant(ext, f"u{ext}@example.com", f"User {ext}", Role.HOST if i == 0 else Role.REQUIRED,
                               "organizer" if i == 0 else "accept")
                   for i, ext in enumerate((organizer, *guests)))
    return BookingDraft(uid or f"uid-{organizer}-{room}-{start.timestamp()}", "", subject, "PBX AUTOCALL", start,
                        start + timedelta(minutes=minutes), "UTC", True, state, reason,
                        room if state is StoredState.SCHEDULED else None, people[0].email, organizer, True, people,
                        private=private)


async def book(store: Store, draft: BookingDraft, now: datetime) -> Booking:
    (booking_id,) = await apply_actions(store, [BookingAction(ActionKind.CREATE, None, draft, ("test",))], now)
    found = await booking_by_id(store, booking_id)
    assert found is not None
    return found
