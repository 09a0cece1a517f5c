"""The AMI client against the simulator: login, actions, Originate outcomes, faults, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pbxsync.plugin.ami.client import AmiClient, AmiSettings, OriginateOutcome, OriginateRequest
from pbxsync.plugin.ami.simulator import AsteriskSimulator, Phone, PhoneBehaviour, SimUser, VoicemailUser
from pbxsync.plugin.ami.wire import AmiDecoder, AmiMessage
from pbxsync.sync.errors import AmiPermissionError, AmiTimeoutError, PbxError, ValidationError
from pbxsync.sync.secrets import Secret

PHONES = [Phone("101"), Phone("102"), Phone("199", PhoneBehaviour.BUSY), Phone("198", PhoneBehaviour.NO_ANSWER),
          Phone("197", PhoneBehaviour.CONGESTION)]


async def until(predicate: Callable[[], bool], deadline: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    s = AsteriskSimulator(phones=PHONES, time_scale=0.001, login_fail_delay=1.0,
                          users=[SimUser("agent", "agentsecret"),
                                 SimUser("pbxsync", "s3cret", frozenset({"call", "system"}),
                                         frozenset({"originate", "call", "reporting"})),
                                 SimUser("limited", "x", frozenset({"call"}), frozenset({"call"}))],
                          voicemail=[VoicemailUser("101", "Alice Example", "alice@example.com")])
    await s.start()
    yield s
    await s.stop()


def settings(sim: AsteriskSimulator, **kw: object) -> AmiSettings:
    base: dict[str, object] = dict(port=sim.port, username="pbxsync", secret=Secret("s3cret"), action_timeout=2.0,
                                   ping_interval=30.0, backoff_initial=0.01, backoff_max=0.05)
    base.update(kw)
    return AmiSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def connect(sim: AsteriskSimulator) -> AsyncIterator[Callable[..., Awaitable[AmiClient]]]:
    clients: list[AmiClient] = []

    async def make(**kw: object) -> AmiClient:
        client = AmiClient(settings(sim, **kw))
        clients.append(client)
        client.start()
        assert await client.wait_connected(5.0)
        return client

    yield make
    for c in clients:
        await c.stop()


def sent_actions(sim: AsteriskSimulator) -> list[AmiMessage]:
    return AmiDecoder(expect_banner=False).feed(sim.received_bytes())


def request(ext: str, attempt: int = 1, **kw: object) -> OriginateRequest:
    base: dict[str, object] = dict(channel=f"PJSIP/{ext}", channel_id=f"pbxs-test-{ext}-{attempt}",
                                   context="pbxsync-autocall", variables=(("PBXSYNC_ROOM", "8001"),),
                                   caller_id="Weekly <8001>", timeout_ms=5000)
    base.update(kw)
    return OriginateRequest(**base)  # type: ignore[arg-type]


async def test_login_ping_and_unique_action_ids(sim: AsteriskSimulator,
                                                connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect()
    pong = await client.ping()
    assert pong.get("Ping") == "Pong"
    await client.ping()
    actions = sent_actions(sim)
    assert actions[0].keys() == ["Action", "Username", "Secret", "Events", "ActionID"]
    assert actions[0].get("Events") == "on"
    ids = [a.action_id for a in actions]
    assert all(ids) and len(set(ids)) == len(ids)
    assert client.health().connected and client.health().banner == "Asterisk Call Manager/11.0.0"


async def test_md5_login(sim: AsteriskSimulator, connect: Callable[..., Awaitable[AmiClient]]) -> None:
    await connect(md5_login=True)
    actions = sent_actions(sim)
    assert [a.get("Action") for a in actions[:2]] == ["Challenge", "Login"]
    assert not actions[1].has("Secret") and len(actions[1].get("Key")) == 32
    assert b"s3cret" not in sim.received_bytes()


@pytest.mark.parametrize(("ext", "outcome", "reason"), [
    ("101", OriginateOutcome.ANSWERED, "4"), ("199", OriginateOutcome.BUSY, "5"),
    ("198", OriginateOutcome.NO_ANSWER, "3"), ("197", OriginateOutcome.CONGESTION, "8"),
    ("555", OriginateOutcome.FAILED, "0")])
async def test_originate_outcomes(sim: AsteriskSimulator, connect: Callable[..., Awaitable[AmiClient]],
                                  ext: str, outcome: OriginateOutcome, reason: str) -> None:
    client = await connect()
    result = await client.originate(request(ext))
    assert (result.outcome, result.reason) == (outcome, reason)
    (sent,) = sim.originates
    assert sent.get("Async") == "true"
    assert sent.get("ChannelId") == f"pbxs-test-{ext}-1"
    assert sent.get_all("Variable") == ["PBXSYNC_ROOM=8001"]
    if outcome is OriginateOutcome.ANSWERED:
        assert [m.uniqueid for m in sim.members("8001")] == ["pbxs-test-101-1"]


async def test_originate_response_of_other_session_is_ignored(
        sim: AsteriskSimulator, connect: Callable[..., Awaitable[AmiClient]]) -> None:
    ours, other = await connect(), await connect()
    seen: list[str] = []
    ours.subscribe(["OriginateResponse"], lambda m: seen.append(m.action_id))
    result = await other.originate(request("101"))
    await until(lambda: len(seen) == 1)
    assert result.outcome is OriginateOutcome.ANSWERED
    assert seen == [result.action_id]
    assert not ours._originates  # nothing of ours was resolved by it


async def test_confbridge_events_and_lists(sim: AsteriskSimulator,
                                           connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect()
    joins: list[AmiMessage] = []
    client.subscribe(["ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd"], joins.append)
    assert await client.confbridge_list("8001") == []
    assert await client.confbridge_list_rooms() == []
    await client.originate(request("101", variables=(("PBXSYNC_ROOM", "8001"), ("PBXSYNC_ROLE", "host"))))
    await client.originate(request("102"))
    await until(lambda: len(joins) == 2)
    members = await client.confbridge_list("8001")
    assert [(m.get("Uniqueid"), m.get("Admin")) for m in members] == [("pbxs-test-101-1", "Yes"),
                                                                     ("pbxs-test-102-1", "No")]
    assert [r.get("Parties") for r in await client.confbridge_list_rooms()] == ["2"]
    assert await client.confbridge_kick("8001") is True
    await until(lambda: [j.name for j in joins][-1] == "ConfbridgeEnd")
    assert await client.confbridge_kick("8001") is False
    vm = await client.voicemail_users()
    assert [(v.get("VoiceMailbox"), v.get("Fullname"), v.get("Email")) for v in vm] == [
        ("101", "Alice Example", "alice@example.com")]


async def test_permission_denied_names_the_class(sim: AsteriskSimulator,
                                                 connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect(username="limited", secret=Secret("x"))
    with pytest.raises(AmiPermissionError) as info:
        await client.originate(request("101"))
    assert "'originate'" in str(info.value) and "limited" in str(info.value)
    with pytest.raises(AmiPermissionError) as info2:
        await client.confbridge_list("8001")
    assert "'reporting'" in str(info2.value)
    assert "\n" not in str(info.value)


async def test_wrong_secret_is_reported_and_retried(sim: AsteriskSimulator) -> None:
    sim.login_fail_delay = 0.0
    client = AmiClient(settings(sim, secret=Secret("wrong")))
    client.start()
    try:
        await until(lambda: "refused" in client.health().last_error)
        assert not client.connected
        assert "wrong" not in client.health().last_error
        await until(lambda: client.health().reconnects >= 2)
    finally:
        await client.stop()


async def test_action_timeout(sim: AsteriskSimulator, connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect(action_timeout=0.05)
    sim.half_open = True
    with pytest.raises(AmiTimeoutError):
        await client.ping()


async def test_watchdog_drops_half_open_link_and_reconnects(
        sim: AsteriskSimulator, connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect(action_timeout=0.05, ping_interval=0.02)
    sim.half_open = True
    await until(lambda: not client.connected)
    assert "no Pong" in client.health().last_error
    sim.half_open = False
    assert await client.wait_connected(5.0)
    assert (await client.ping()).get("Ping") == "Pong"


async def test_originate_in_flight_is_never_replayed(sim: AsteriskSimulator,
                                                     connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect(action_timeout=5.0)
    sim.half_open = True  # the Originate is received but never answered
    task = asyncio.create_task(client.originate(request("101")))
    await until(lambda: b"Action: Originate" in sim.received_bytes())
    sim.half_open = False
    sim.drop_connections()
    result = await task
    assert result.outcome is OriginateOutcome.UNKNOWN
    assert await client.wait_connected(5.0)
    await client.ping()
    assert sim.received_bytes().count(b"Action: Originate") == 1
    assert len(sim.originates) == 0  # half-open: the simulator never acted on it either


async def test_not_connected_raises_without_sending(sim: AsteriskSimulator) -> None:
    client = AmiClient(settings(sim))
    with pytest.raises(PbxError, match="down"):
        await client.originate(request("101"))
    assert sim.received_bytes() == b""


async def test_garbage_and_split_utf8_from_server(sim: AsteriskSimulator,
                                                  connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect()
    events: list[AmiMessage] = []
    client.subscribe(None, events.append)
    sim.send_garbage(b"\xff\xfe\x00garbage\r\n\r\n")
    raw = "Event: UserEvent\r\nPrivilege: user,all\r\nName: Jürgen\r\n\r\n".encode()
    cut = raw.index("ü".encode()) + 1
    sim.send_garbage(raw[:cut])
    await asyncio.sleep(0)
    sim.send_garbage(raw[cut:])
    await until(lambda: any(e.name == "UserEvent" for e in events))
    assert [e.get("Name") for e in events if e.name == "UserEvent"] == ["Jürgen"]
    assert (await client.ping()).get("Ping") == "Pong"


async def test_shutdown_then_restart_reconnects(sim: AsteriskSimulator,
                                                connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect()
    shutdowns: list[AmiMessage] = []
    client.subscribe(["Shutdown"], shutdowns.append)
    port = sim.port
    await sim.shutdown()
    await until(lambda: not client.connected)
    assert [s.get("Shutdown") for s in shutdowns] == ["Cleanly"]
    await sim.start(port=port)
    assert await client.wait_connected(5.0)


async def test_hostile_values_never_reach_the_wire(sim: AsteriskSimulator,
                                                   connect: Callable[..., Awaitable[AmiClient]]) -> None:
    client = await connect()
    before = sim.received_bytes()
    for bad in [request("101", caller_id="x\r\nAction: Originate"),
                request("101", variables=(("PBXSYNC_ROOM", "8001,PBXSYNC_ROLE=host"),)),
                request("101", channel="PJSIP/101&PJSIP/102"),
                request("101", channel="PJSIP/${EXTEN}"),
                request("101", channel_id="a b"),
                request("101", caller_id="\x00"),
                request("101", caller_id="x" * 100_000)]:
        with pytest.raises(ValidationError):
            await client.originate(bad)
    await client.ping()
    assert sim.received_bytes()[len(before):].count(b"Action: ") == 1  # only the Ping
    assert sim.originates == []
