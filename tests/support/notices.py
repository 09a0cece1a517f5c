"""The world of the notices tests (issue 16, rejection notices): an organisation whose PBX meetings are
rejected for the reasons organizers are told about, and one whose organizer is outside; the config that
points pbxsync at the EWS or the Graph simulator with `[meetings] notify_organizer = true`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pbxsync.plugin.booking.model import Booking, BookingDraft, StoredState
from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.graph_server import GraphSimulator
from pbxsync.sync.simulator.mailboxes import Organisation

ALICE, BOB, CAROL, DAVE = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
GUEST = "guest@partner.org"  # organizes from outside: never told anything
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
DAY = (NOW + timedelta(days=2)).replace(hour=9, minute=0)


def hhmm(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def organisation(extra_meetings: tuple[dict[str, object], ...] = ()) -> Organisation:
    """Alice's "Standup" takes room 8001 at 9:00; Bob's "Clash" wants the same room at 9:15 and no other
    room is free (rejected: no free room); the guest's "From outside" invites Alice (rejected: the
    organizer is not a PBX user); Dave is in Exchange but not a PBX user."""
    def user(email: str, **extra: object) -> dict[str, object]:
        return {"email": email, "name": email.partition("@")[0].title(), "password": "pw", **extra}

    return Organisation.from_dict({
        "domain": "example.com",
        "users": [user(ALICE), user(BOB), user(CAROL), user(DAVE),
                  {**user("svc-pbx@example.com"), "password": "svc-pw", "can_impersonate": True}],
        "meetings": [
            {"uid": "standup", "subject": "Standup", "location": "PBX", "organizer": {"email": ALICE},
             "start": hhmm(DAY), "duration_minutes": 30, "attendees": [{"email": BOB, "response": "accept"}]},
            {"uid": "clash", "subject": "Clash", "location": "PBX AUTOCALL", "organizer": {"email": BOB},
             "start": hhmm(DAY + timedelta(minutes=15)), "duration_minutes": 60,
             "attendees": [{"email": ALICE, "response": "accept"}]},
            {"uid": "external", "subject": "From outside", "location": "PBX", "organizer": {"email": GUEST},
             "start": hhmm(DAY + timedelta(hours=3)), "attendees": [{"email": ALICE, "response": "accept"}]},
            *extra_meetings,
        ],
    }, now=NOW)


def carol_meeting() -> dict[str, object]:
    """Carol has no room of her own: her meeting is booked in a pool room, if [pbx] rooms has one."""
    return {"uid": "carol-review", "subject": "Review", "location": "PBX", "organizer": {"email": CAROL},
            "start": hhmm(DAY + timedelta(days=1)), "duration_minutes": 30}


def users_toml() -> str:
    return "".join(f'[[users]]\nextension = "{ext}"\nemail = "{email}"\nname = "{name}"\n{room}\n'
                   for ext, email, name, room in (("101", ALICE, "Alice", 'room = "8001"'),
                                                  ("102", BOB, "Bob", 'room = "8001"'),
                                                  ("103", CAROL, "Carol", "")))


def _write_config(tmp_path: Path, exchange: str, rooms: list[str], language: str) -> Path:
    path = tmp_path / "pbxsync.toml"
    quoted = ", ".join(f'"{r}"' for r in rooms)
    path.write_text(f"""
database = "pbxsync.db"
[exchange]
{exchange}
[sync]
days_back = 1
days_ahead = 14
[pbx]
rooms = [{quoted}]
[meetings]
notify_organizer = true
notices_language = "{language}"
[control]
socket = "{tmp_path / 'control.sock'}"
metrics_listen = ""
{users_toml()}""", encoding="utf-8")
    return path


def ews_config(tmp_path: Path, sim: EwsSimulator, rooms: list[str], language: str = "en") -> Path:
    exchange = (f'server = "{sim.ews_url}"\nauth = "basic"\nusername = "svc-pbx@example.com"\n'
                'password = "svc-pw"')
    return _write_config(tmp_path, exchange, rooms, language)


def graph_config_text(tmp_path: Path, sim: GraphSimulator, rooms: list[str], language: str = "en") -> Path:
    exchange = (f'backend = "graph"\ntenant_id = "{sim.app.tenant_id}"\nclient_id = "{sim.app.client_id}"\n'
                f'client_secret = "{sim.app.client_secret}"\nauthority = "{sim.authority}"\n'
                f'graph_endpoint = "{sim.graph_endpoint}"\nca_file = "{sim.tls.ca_file}"\nnotifications = "off"')
    return _write_config(tmp_path, exchange, rooms, language)


CONFLICT = 'room conflict: room 8001 is taken by "Secret" of 102 (2026-12-04T09:00:00Z..) and no other room is free'


def booking(booking_id: int = 1, state: StoredState = StoredState.REJECTED, reason: str | None = CONFLICT,
            extension: str | None = "101", start: datetime | None = None) -> Booking:
    start = start or NOW + timedelta(days=1)
    return Booking(booking_id, BookingDraft(
        uid=f"uid-{booking_id}", recurrence_key="", subject="Weekly", location="PBX", start=start,
        end=start + timedelta(hours=1), timezone="Europe/Berlin", autocall=False, state=state, reason=reason,
        room="8001" if state is StoredState.SCHEDULED else None, organizer_email=ALICE,
        organizer_extension=extension, organizer_copy_seen=True))
