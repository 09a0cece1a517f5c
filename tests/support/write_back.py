"""One organisation, served over EWS or Graph, with `[meetings] write_back` on: what the write-back tests share.

`WriteBackWorld.run_pass(now)` is what the daemon does after a timed pass: sync every user, reconcile the
bookings (PINs included), then the write-back step through the same source. `body(mailbox, item_id)` reads
the meeting back through the simulator's own protocol (exchangelib GetItem, or Graph GET /events/{id}).
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pbxsync.plugin.booking.after_sync import update_bookings
from pbxsync.plugin.writeback.step import WriteBackSummary, write_back
from pbxsync.sync.config import Config, parse_config
from pbxsync.sync.engine import SyncEngine
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import MeetingRecord, Organisation
from pbxsync.sync.sources.base import MailboxSource
from pbxsync.sync.sources.ews import EwsSource
from pbxsync.sync.sources.graph import GraphSource
from pbxsync.sync.sources.writer import CalendarWriter, ItemBody, writer_for
from pbxsync.sync.store.db import Store, open_store
from tests.support.graph import graph_config

ALICE, BOB, OUTSIDER = "alice@example.com", "bob@example.com", "guest@partner.org"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
AGENDA = ("<html><head><style>p{margin:0}</style></head><body><p>Agenda: budget &amp; hiring</p>"
          "<!-- outlook quirk --><p>Bring numbers</p></body></html>")


def organisation(body: str = AGENDA, body_type: str = "html", start: datetime = START,
                 now: datetime = NOW) -> Organisation:
    def user(email: str, **extra: object) -> dict[str, object]:
        return {"email": email, "name": email.partition("@")[0].title(), "password": "pw", **extra}

    return Organisation.from_dict({
        "domain": "example.com",
        "users": [user(ALICE), user(BOB), {**user("svc-pbx@example.com"), "password": "svc-pw",
                                           "can_impersonate": True}],
        "meetings": [
            {"uid": "standup", "subject": "Standup", "location": "PBX AUTOCALL", "organizer": {"email": ALICE},
             "start": start.strftime("%Y-%m-%dT%H:%M"), "duration_minutes": 30, "body": body,
             "body_type": body_type, "attendees": [{"email": BOB, "response": "accept"}]},
            {"uid": "later", "subject": "Later", "location": "PBX", "organizer": {"email": BOB},
             "start": (start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"), "duration_minutes": 60,
             "attendees": [{"email": ALICE, "response": "accept"}]},
        ],
    }, now=now)


PBX_USERS = f"""
[[users]]
extension = "101"
email = "{ALICE}"
room = "8001"
[[users]]
extension = "102"
email = "{BOB}"
room = "8002"
"""


def ews_exchange(ews_url: str) -> str:
    """The [exchange] section for the EWS simulator, through the impersonating service account."""
    return (f'[exchange]\nserver = "{ews_url}"\nauth = "basic"\nusername = "svc-pbx@example.com"\n'
            'password = "svc-pw"\n')


def config_text(database: Path, exchange: str, *, sync: str = "days_back = 1\ndays_ahead = 14",
                users: str = PBX_USERS, extra: str = "") -> str:
    """A config with write-back, dial-in numbers and PINs on; `extra`: more tables (before the users)."""
    return f"""
database = "{database}"
{exchange}
[sync]
{sync}
[pbx]
rooms = ["8004"]
dial_in_numbers = ["+49 30 1234567"]
[conference]
pins = true
[meetings]
write_back = true
{extra}
{users}"""


def config_for(database: Path, ews_url: str = "") -> Config:
    return parse_config(tomllib.loads(config_text(database, ews_exchange(ews_url or "http://127.0.0.1:9/ews"))))


@dataclass
class WriteBackWorld:
    org: Organisation
    config: Config
    store: Store
    source: MailboxSource
    writer: CalendarWriter

    async def run_pass(self, now: datetime) -> WriteBackSummary:
        await SyncEngine(self.store, self.source, self.config).sync_all(now)
        await update_bookings(self.store, self.config, now)
        return await write_back(self.store, self.config, self.writer, now)

    def organizer_copy(self, uid: str = "standup") -> MeetingRecord:
        return next(m for box, m in self.org.copies(uid) if box == m.organizer_email)

    async def body(self, uid: str = "standup") -> ItemBody:
        """The organizer's meeting body, read back over the protocol under test."""
        copy = self.organizer_copy(uid)
        if isinstance(self.source, EwsSource | GraphSource) and self.source.kept_bodies is not None:
            self.source.kept_bodies.forget(copy.organizer_email)  # read over the wire, not what the sync kept
        [found] = await self.writer.read_bodies(copy.organizer_email, [copy.item_id])
        assert isinstance(found, ItemBody), found
        return found

    async def close(self) -> None:
        await self.source.close()
        await self.store.close()


@contextmanager
def serving(backend: str, org: Organisation, tmp_path: Path) -> Iterator[Config]:
    """The simulator for `backend` over `org`, and a config pointing at it."""
    database = tmp_path / "pbxsync.db"
    if backend == "ews":
        with EwsSimulator(org) as ews:
            yield config_for(database, ews.ews_url)
        return
    with GraphSimulator(org, tls_dir=tmp_path / "tls", clock=lambda: NOW) as graph:
        config = config_for(database)
        yield replace(config, exchange=graph_config(graph))


async def open_world(org: Organisation, config: Config) -> WriteBackWorld:
    store = await open_store(config.database)
    source: MailboxSource
    if config.exchange.backend == "graph":
        source = GraphSource(config.exchange, config.sync, clock=lambda: NOW, keep_bodies=config.meetings.write_back)
    else:
        source = EwsSource(config.exchange, config.users, config.sync.default_region,
                           keep_bodies=config.meetings.write_back)  # as the daemon makes it (ews_backend)
    writer = writer_for(source)
    assert writer is not None
    return WriteBackWorld(org, config, store, source, writer)


@asynccontextmanager
async def write_back_world(backend: str, tmp_path: Path) -> AsyncIterator[WriteBackWorld]:
    """The standard organisation served over `backend`, opened as a WriteBackWorld (the tests' fixture)."""
    org = organisation()
    with serving(backend, org, tmp_path) as config:
        world = await open_world(org, config)
        try:
            yield world
        finally:
            await world.close()
