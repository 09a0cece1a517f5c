"""The manager actions the simulated Asterisk answers after login, each as Asterisk 22 answers it.

`ACTIONS` maps an action name (lower-case) to the write classes it needs (any one suffices; None: no
class needed, as Asterisk 22 registers them) and its handler. A handler reads and changes the `World`
and answers through an `ActionCall`: Response then ActionID then the rest, EventList framing for lists,
error texts verbatim. Login, Challenge and Logoff belong to the session (`plugin.ami.simulator`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pbxsync.plugin.ami import sim_functions
from pbxsync.plugin.ami.sim_world import UNKNOWN, CallOutcome, OriginateRequest, Room, World
from pbxsync.plugin.ami.wire import AmiMessage


class ActionCall:
    """One action being answered: the request and the way back to the session that sent it."""

    def __init__(self, request: AmiMessage, send: Callable[[AmiMessage], None]) -> None:
        self.request = request
        self.send = send

    def reply(self, status: str, *rest: tuple[str, str]) -> None:
        headers: list[tuple[str, str]] = [("Response", status)]
        if self.request.has("ActionID"):
            headers.append(("ActionID", self.request.action_id))
        self.send(AmiMessage((*headers, *rest)))

    def list_start(self, text: str) -> None:
        self.reply("Success", ("EventList", "start"), ("Message", text))

    def list_item(self, event: str, *rest: tuple[str, str]) -> None:
        self.send(AmiMessage((("Event", event), ("ActionID", self.request.action_id), *rest)))

    def list_end(self, event: str, count: int, *rest: tuple[str, str]) -> None:
        self.send(AmiMessage((("Event", event), ("ActionID", self.request.action_id), ("EventList", "Complete"),
                              ("ListItems", str(count)), *rest)))


Handler = Callable[[World, ActionCall], Awaitable[None]]


@dataclass(frozen=True)
class Action:
    classes: frozenset[str] | None  # write classes, any one suffices; None = no class needed
    handler: Handler


# ---- simple actions ---------------------------------------------------------------------------------

async def _ping(world: World, call: ActionCall) -> None:
    call.reply("Success", ("Ping", "Pong"), ("Timestamp", f"{world.clock():.6f}"))


async def _coresettings(world: World, call: ActionCall) -> None:
    call.reply("Success", ("AMIversion", "11.0.0"), ("AsteriskVersion", world.version),
               ("SystemName", ""), ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"),
               ("CoreRunUser", ""), ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"),
               ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
               ("SoundsSearchCustomDir", "No"))


async def _corestatus(world: World, call: ActionCall) -> None:
    started = time.gmtime(world.started_at)
    call.reply("Success", ("CoreStartupDate", time.strftime("%Y-%m-%d", started)),
               ("CoreStartupTime", time.strftime("%H:%M:%S", started)),
               ("CoreReloadDate", time.strftime("%Y-%m-%d", started)),
               ("CoreReloadTime", time.strftime("%H:%M:%S", started)),
               ("CoreCurrentCalls", str(world.current_calls)), ("CoreProcessedCalls", str(world.processed_calls)))


async def _modulecheck(world: World, call: ActionCall) -> None:
    module = call.request.get("Module").removesuffix(".so")
    if module in world.modules:
        call.reply("Success", ("Version", ""))
    else:
        call.reply("Error", ("Message", "Module not loaded"))


async def _command(world: World, call: ActionCall) -> None:
    command = call.request.get("Command").strip()
    lines = world.commands.get(command)
    if lines is None and command == "core show version":
        lines = [f"Asterisk {world.version} built by pbxsync simulator"]
    if lines is None:
        words = " ".join(command.split()[:2])
        call.reply("Error", ("Message", "Command output follows"),
                   ("Output", f"No such command '{command}' (type 'core show help {words}' for other possible "
                              "commands)"))
        return
    call.reply("Success", ("Message", "Command output follows"), *[("Output", line) for line in lines])


async def _voicemailuserslist(world: World, call: ActionCall) -> None:
    call.list_start("Voicemail user list will follow")
    for vm in world.voicemail:
        call.list_item(
            "VoicemailUserEntry", ("VMContext", vm.context), ("VoiceMailbox", vm.mailbox),
            ("Fullname", vm.fullname), ("Email", vm.email), ("Pager", ""), ("ServerEmail", "asterisk"),
            ("FromString", ""), ("MailCommand", "/usr/sbin/sendmail -t"), ("Language", ""), ("TimeZone", ""),
            ("Callback", ""), ("Dialout", ""), ("UniqueID", ""), ("ExitContext", ""),
            ("SayDurationMinimum", "2"), ("SayEnvelope", "Yes"), ("SayCID", "No"), ("AttachMessage", "Yes"),
            ("AttachmentFormat", ""), ("DeleteMessage", "No"), ("VolumeGain", "0.00"), ("CanReview", "No"),
            ("CanMarkUrgent", "Yes"), ("CallOperator", "No"), ("MaxMessageCount", "100"),
            ("MaxMessageLength", "0"), ("NewMessageCount", "0"), ("OldMessageCount", "0"))
    call.list_end("VoicemailUserEntryComplete", len(world.voicemail))


async def _showdialplan(world: World, call: ActionCall) -> None:
    context = call.request.get("Context")
    if context not in world.dialplan:
        call.reply("Error", ("Message", f"Did not find context {context}"))
        return
    rows = world.dialplan[context]
    call.list_start("DialPlan list will follow")
    for exten, priority, app, data in rows:
        call.list_item("ListDialplan", ("Context", context), ("Extension", exten), ("Priority", priority),
                       ("Application", app), ("AppData", data), ("Registrar", "pbx_config"))
    call.list_end("ShowDialPlanComplete", len(rows), ("ListExtensions", str(len({r[0] for r in rows}))),
                  ("ListPriorities", str(len(rows))), ("ListContexts", "1"))


async def _extensionstatelist(world: World, call: ActionCall) -> None:
    """Every hint: a dialplan row whose priority is "hint" (as `dialplan show` and ShowDialPlan print it).
    The simulated phones have no device state Asterisk knows: every hint is Unavailable."""
    hints = [(context, exten, devices) for context, rows in world.dialplan.items()
             for exten, priority, devices, _ in rows if priority == "hint"]
    call.list_start("Extension Statuses will follow")
    for context, exten, devices in hints:
        call.list_item("ExtensionStatus", ("Exten", exten), ("Context", context), ("Hint", devices),
                       ("Status", "4"), ("StatusText", "Unavailable"))
    call.list_end("ExtensionStateListComplete", len(hints))


async def _setvar(world: World, call: ActionCall) -> None:
    name = call.request.get("Variable")
    if not name:
        call.reply("Error", ("Message", "No variable specified"))
    elif call.request.get("Channel"):
        call.reply("Error", ("Message", "No such channel"))  # the simulated PBX has no channels to name here
    elif sim_functions.write(world, name, call.request.get("Value")):
        call.reply("Success", ("Message", "Variable Set"))
    else:
        call.reply("Error", ("Message", "Variable not set"))


async def _getvar(world: World, call: ActionCall) -> None:
    name = call.request.get("Variable")
    if not name:
        call.reply("Error", ("Message", "No variable specified"))
        return
    # manager.c does not check the function's result: a failed read is an empty Value
    call.reply("Success", ("Variable", name), ("Value", sim_functions.read(world, name)))


# ---- conferences ------------------------------------------------------------------------------------

def _room_or_error(world: World, call: ActionCall) -> Room | None:
    name = call.request.get("Conference")
    if not world.rooms:
        call.reply("Error", ("Message", "No active conferences."))
        return None
    room = world.rooms.get(name)
    if room is None:
        call.reply("Error", ("Message", "No Conference by that name found."))
    return room


async def _confbridgelist(world: World, call: ActionCall) -> None:
    if not call.request.get("Conference"):
        call.reply("Error", ("Message", "No Conference name provided."))
        return
    room = world.rooms.get(call.request.get("Conference"))
    if room is None:
        call.reply("Error", ("Message", "No Conference by that name found."))
        return
    call.list_start("Confbridge user list will follow")
    yes_no = {True: "Yes", False: "No"}
    for m in room.members:
        answered = str(int((time.monotonic() - m.joined_at) / max(world.time_scale, 1e-9)))
        call.list_item("ConfbridgeList", ("Conference", room.name), ("Admin", yes_no[m.admin]),
                       ("MarkedUser", yes_no[m.marked]), ("WaitMarked", "No"), ("EndMarked", "No"),
                       ("EndMarkedAny", "No"), ("Waiting", "No"), ("Muted", yes_no[m.muted]), ("Talking", "No"),
                       ("AnsweredTime", answered), *m.snapshot())
    call.list_end("ConfbridgeListComplete", len(room.members))


async def _confbridgelistrooms(world: World, call: ActionCall) -> None:
    if not world.rooms:
        call.reply("Error", ("Message", "No active conferences."))
        return
    call.list_start("Confbridge conferences will follow")
    for room in world.rooms.values():
        call.list_item("ConfbridgeListRooms", ("Conference", room.name), ("Parties", str(len(room.members))),
                       ("Marked", str(sum(m.marked for m in room.members))),
                       ("Locked", "Yes" if room.locked else "No"), ("Muted", "No"))
    call.list_end("ConfbridgeListRoomsComplete", len(world.rooms))


async def _confbridgelock(world: World, call: ActionCall) -> None:
    room = _room_or_error(world, call)
    if room is not None:
        room.locked = True
        call.reply("Success", ("Message", "Conference locked"))


async def _confbridgeunlock(world: World, call: ActionCall) -> None:
    room = _room_or_error(world, call)
    if room is not None:
        room.locked = False
        call.reply("Success", ("Message", "Conference unlocked"))


async def _confbridgemute(world: World, call: ActionCall, muted: bool = True) -> None:
    room = _room_or_error(world, call)
    if room is None:
        return
    channel = call.request.get("Channel")
    chosen = [m for m in room.members if channel in ("all", "participants") or m.channel == channel]
    if channel == "participants":
        chosen = [m for m in chosen if not m.admin]
    if not chosen and channel not in ("all", "participants"):
        call.reply("Error", ("Message", "No Channel by that name found in Conference."))
        return
    for member in chosen:
        member.muted = muted
    call.reply("Success", ("Message", "User muted" if muted else "User unmuted"))


async def _confbridgeunmute(world: World, call: ActionCall) -> None:
    await _confbridgemute(world, call, muted=False)


async def _confbridgekick(world: World, call: ActionCall) -> None:
    room = _room_or_error(world, call)
    if room is None:
        return
    channel = call.request.get("Channel")
    if channel == "all":
        leaving = list(room.members)
        call.reply("Success", ("Message", "All participants kicked"))
    else:
        leaving = [m for m in room.members if m.channel == channel]
        if not leaving:
            call.reply("Error", ("Message", "No Channel by that name found in Conference."))
            return
        call.reply("Success", ("Message", "User kicked"))
    world.spawn(world.leave(room, leaving))


async def _hangup(world: World, call: ActionCall) -> None:
    if world.hang_up(call.request.get("Channel")):
        call.reply("Success", ("Message", "Channel Hungup"))
    else:
        call.reply("Error", ("Message", "No such channel"))


# ---- originate --------------------------------------------------------------------------------------

def originate_request(msg: AmiMessage) -> OriginateRequest:
    caller_name, _, caller_num = msg.get("CallerID").partition("<")
    return OriginateRequest(
        dial=msg.get("Channel"), channel_id=msg.get("ChannelId"), timeout_ms=msg.get("Timeout"),
        variables=dict(v.partition("=")[::2] for v in msg.get_all("Variable")),
        caller_num=caller_num.rstrip(">").strip(), caller_name=caller_name.strip(),
        application=msg.get("Application"), data=msg.get("Data"), context=msg.get("Context"), exten=msg.get("Exten"))


def originate_response(msg: AmiMessage, req: OriginateRequest, outcome: CallOutcome) -> AmiMessage:
    """The OriginateResponse event: ActionID first, then Application/Data or Context/Exten as requested."""
    head: list[tuple[str, str]] = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
    if msg.has("ActionID"):
        head.append(("ActionID", msg.action_id))
    target = ([("Application", msg.get("Application")), ("Data", msg.get("Data"))] if msg.has("Application")
              else [("Context", msg.get("Context")), ("Exten", msg.get("Exten"))])
    return AmiMessage((*head, ("Response", "Success" if outcome.answered else "Failure"),
                       ("Channel", outcome.channel), *target, ("Reason", str(outcome.reason)),
                       ("Uniqueid", outcome.uniqueid), ("CallerIDNum", req.caller_num or UNKNOWN),
                       ("CallerIDName", req.caller_name or UNKNOWN)))


async def _originate(world: World, call: ActionCall) -> None:
    msg = call.request
    if not msg.get("Channel"):  # manager.c action_originate checks this first, before Async
        call.reply("Error", ("Message", "Channel not specified"))
        return
    req = originate_request(msg)
    if msg.get("Async").lower() in ("true", "yes", "1"):
        call.reply("Success", ("Message", "Originate successfully queued"))
        world.spawn(_run_call(world, msg, req))
        return
    outcome = await world.place_call(req)  # synchronous: the session blocks (14b)
    if outcome.answered:
        call.reply("Success", ("Message", "Originate successfully queued"))
    else:
        call.reply("Error", ("Message", "Originate failed"))
    if outcome.member is not None:
        await world.join(outcome.room, outcome.member)


async def _run_call(world: World, msg: AmiMessage, req: OriginateRequest) -> None:
    outcome = await world.place_call(req)
    world.emit("call", list(originate_response(msg, req, outcome).headers))  # to every `call` reader (29a)
    if outcome.member is not None:
        await world.join(outcome.room, outcome.member)


ACTIONS: dict[str, Action] = {
    "ping": Action(None, _ping),
    "originate": Action(frozenset({"originate"}), _originate),
    "confbridgelist": Action(frozenset({"reporting"}), _confbridgelist),
    "confbridgelistrooms": Action(frozenset({"reporting"}), _confbridgelistrooms),
    "confbridgekick": Action(frozenset({"call"}), _confbridgekick),
    "confbridgelock": Action(frozenset({"call"}), _confbridgelock),
    "confbridgeunlock": Action(frozenset({"call"}), _confbridgeunlock),
    "confbridgemute": Action(frozenset({"call"}), _confbridgemute),
    "confbridgeunmute": Action(frozenset({"call"}), _confbridgeunmute),
    "hangup": Action(frozenset({"system", "call"}), _hangup),
    "voicemailuserslist": Action(frozenset({"call", "reporting"}), _voicemailuserslist),
    "coresettings": Action(frozenset({"system", "reporting"}), _coresettings),
    "corestatus": Action(frozenset({"system", "reporting"}), _corestatus),
    "modulecheck": Action(frozenset({"system"}), _modulecheck),
    "showdialplan": Action(frozenset({"config", "reporting"}), _showdialplan),
    "command": Action(frozenset({"command"}), _command),
    "setvar": Action(frozenset({"call"}), _setvar),
    "extensionstatelist": Action(frozenset({"call", "reporting"}), _extensionstatelist),
    "getvar": Action(frozenset({"call", "reporting"}), _getvar),
}
