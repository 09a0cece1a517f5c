"""Calendar items in the store and presence configs, for the presence tests."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pbxsync.sync.config import Config, PbxConfig, PresenceConfig, UserConfig
from pbxsync.sync.model import Occurrence, Sensitivity, ShowAs
from pbxsync.sync.plan import CalendarPlan
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.calendar import apply_calendar_plan
from pbxsync.sync.store.db import Store
from tests.support.asterisk_harness import AmiClient

# What docs/asterisk.md tells admins to write, with the custom state alone (the tests load no PJSIP).
HINTS = "[pbxsync-test-hints]\nexten => 101,hint,Custom:pbxsync-101\n"
VOICEMAIL = "[general]\n[default]\n101 => 1234,Alice Example\n102 => 1234,Bob Builder\n"


def occurrence(item_id: str, start: datetime, end: datetime, show_as: ShowAs = ShowAs.BUSY, *,
               subject: str = "Team meeting", sensitivity: Sensitivity = Sensitivity.NORMAL,
               cancelled: bool = False) -> Occurrence:
    return Occurrence(item_id=item_id, change_key=f"ck-{item_id}-{cancelled}", uid=f"uid-{item_id}", start=start,
                      end=end, subject=subject, sensitivity=sensitivity, is_cancelled=cancelled, show_as=show_as)


async def store_items(store: Store, mailbox: str, *items: Occurrence, now: datetime) -> None:
    async with store.transaction() as conn:
        await apply_calendar_plan(conn, mailbox, CalendarPlan(inserts=items), now)


async def delete_item(store: Store, mailbox: str, item_id: str, now: datetime) -> None:
    async with store.transaction() as conn:
        await apply_calendar_plan(conn, mailbox, CalendarPlan(deletes=(item_id,)), now)


def presence_config(extensions: dict[str, str], *, port: int = 5038, secret: str = "ami-secret",
                    opted_out: frozenset[str] = frozenset(), forward: dict[str, str] | None = None,
                    busy_statuses: tuple[str, ...] = ("busy", "oof")) -> Config:
    """Users by extension -> mailbox, presence on, the AMI link at 127.0.0.1:`port`."""
    users = [UserConfig(extension=ext, email=[mailbox], name=f"User {ext}", presence=ext not in opted_out,
                        presence_forward=(forward or {}).get(ext, "")) for ext, mailbox in extensions.items()]
    return Config(users=users, pbx=PbxConfig(host="127.0.0.1", port=port, secret=Secret(secret)),
                  presence=PresenceConfig(enabled=True, busy_statuses=list(busy_statuses), timezone="UTC"))


_MEETING_B64 = "SW4gYSBtZWV0aW5nLCB1bnRpbCAxMTozMCDDvA=="  # "In a meeting, until 11:30 ü"
# Setvar/Getvar without a channel as the real Asterisk 22 answers them (recorded from the test chroot's
# Asterisk; tests/integration/test_presence_asterisk.py replays them there, tests/unit/test_ami_simulator_setvar.py
# against the simulator): (action, headers, the reply's headers after Response/ActionID).
SETVAR_EXCHANGES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    ("Setvar", {"Variable": "DEVICE_STATE(Custom:pbxsync-101)", "Value": "BUSY"},
     {"Response": "Success", "Message": "Variable Set"}),
    ("Getvar", {"Variable": "DEVICE_STATE(Custom:pbxsync-101)"},
     {"Response": "Success", "Variable": "DEVICE_STATE(Custom:pbxsync-101)", "Value": "BUSY"}),
    ("Setvar", {"Variable": "DEVICE_STATE(Custom:pbxsync-101)", "Value": "BOGUS"},
     {"Response": "Error", "Message": "Variable not set"}),
    ("Setvar", {"Variable": "PRESENCE_STATE(CustomPresence:101)", "Value": f"dnd,,{_MEETING_B64},e"},
     {"Response": "Success", "Message": "Variable Set"}),
    ("Getvar", {"Variable": "PRESENCE_STATE(CustomPresence:101,value)"},
     {"Response": "Success", "Variable": "PRESENCE_STATE(CustomPresence:101,value)", "Value": "dnd"}),
    ("Getvar", {"Variable": "PRESENCE_STATE(CustomPresence:101,message)"},
     {"Response": "Success", "Variable": "PRESENCE_STATE(CustomPresence:101,message)",
      "Value": "In a meeting, until 11:30 ü"}),
    ("Getvar", {"Variable": "PRESENCE_STATE(CustomPresence:101,message,e)"},
     {"Response": "Success", "Variable": "PRESENCE_STATE(CustomPresence:101,message,e)", "Value": _MEETING_B64}),
    ("Setvar", {"Variable": "PRESENCE_STATE(CustomPresence:101)", "Value": "available,,,e"},
     {"Response": "Success", "Message": "Variable Set"}),
    ("Getvar", {"Variable": "PRESENCE_STATE(CustomPresence:101,value)"},
     {"Response": "Success", "Variable": "PRESENCE_STATE(CustomPresence:101,value)", "Value": "available"}),
    ("Getvar", {"Variable": "PRESENCE_STATE(CustomPresence:101,message)"},
     {"Response": "Success", "Variable": "PRESENCE_STATE(CustomPresence:101,message)", "Value": ""}),
    ("Getvar", {"Variable": "DEVICE_STATE(Custom:nothing)"},
     {"Response": "Success", "Variable": "DEVICE_STATE(Custom:nothing)", "Value": "UNKNOWN"}),
    ("Setvar", {"Variable": "PRESENCE_STATE(CustomPresence:101)", "Value": "bogus,,,e"},
     {"Response": "Error", "Message": "Variable not set"}),
    ("Setvar", {"Value": "x"}, {"Response": "Error", "Message": "No variable specified"}),
    ("Getvar", {}, {"Response": "Error", "Message": "No variable specified"}),
]
# The events those exchanges raise on the real Asterisk, in order (class call).
SETVAR_EVENTS = [
    {"Event": "DeviceStateChange", "Device": "Custom:pbxsync-101", "State": "BUSY"},
    {"Event": "PresenceStateChange", "Presentity": "CustomPresence:101", "Status": "dnd", "Subtype": "",
     "Message": "In a meeting, until 11:30 ü"},
    {"Event": "PresenceStateChange", "Presentity": "CustomPresence:101", "Status": "available", "Subtype": "",
     "Message": ""},
]


async def getvar(ami: AmiClient, variable: str) -> str:
    """A dialplan function's value read over AMI (Getvar without a channel)."""
    reply = await ami.action("Getvar", Variable=variable)
    assert reply["Response"] == "Success", reply
    return reply.get("Value", "")


async def until_value(ami: AmiClient, variable: str, wanted: str, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (value := await getvar(ami, variable)) != wanted:
        assert loop.time() < deadline, f"{variable} is {value!r}, not {wanted!r}"
        await asyncio.sleep(0.02)  # polling interval while pbxsync and Asterisk work


async def blf(ami: AmiClient) -> str:
    """What a BLF key subscribed to 101 shows: the StatusText of the HINTS hint's extension state."""
    reply = await ami.action("ExtensionState", Exten="101", Context="pbxsync-test-hints")
    assert reply["Response"] == "Success", reply
    return reply["StatusText"]
