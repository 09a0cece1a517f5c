"""Issue 14 on FastAGI and in the config: who may speak FastAGI, PIN guessing slowed down, caller-ID
sharing following the phonebook's, longer PINs, and `pbxsync check` warning about an open phonebook."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from pbxsync.plugin.agi.callerid import CallerIdLookup
from pbxsync.plugin.agi.room import RoomService
from pbxsync.plugin.agi.server import AgiLimits, FastAgiServer, allowed
from pbxsync.plugin.booking.pins import ensure_pins
from pbxsync.plugin.check.local import check_ldap_privacy
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.config import AgiConfig, ConferenceConfig, Config, LdapConfig, SyncConfig, UserConfig, load_config
from pbxsync.sync.errors import ConfigError
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.preflight import Outcome
from pbxsync.sync.store.db import Store
from tests.support.agi import T0, add_contact, env_block, fake_asterisk, insert_booking


class InstantClock(FakeClock):
    """A fake clock whose sleeps pass at once, adding up how long they were."""

    slept = 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.advance(seconds)


async def serve(routes: dict[str, object], limits: AgiLimits | None = None) -> FastAgiServer:
    server = FastAgiServer(routes, "127.0.0.1", 0, limits)  # type: ignore[arg-type]
    await server.start()
    return server


async def refused(port: int) -> bool:
    """Whether the server hangs up on a request without saying anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(env_block("room", arg_1="8001"))
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


# ---- [agi] allow and the per-address cap --------------------------------------------------------------

@pytest.mark.parametrize(("host", "networks", "expected"), [
    ("127.0.0.1", ("127.0.0.1/32", "::1/128"), True),
    ("::1", ("127.0.0.1/32", "::1/128"), True),
    ("::ffff:127.0.0.1", ("127.0.0.1/32",), True),
    ("192.0.2.7", ("127.0.0.1/32", "::1/128"), False),
    ("192.0.2.7", ("192.0.2.0/24",), True),
    ("192.0.2.7", ("not a network",), False),
    ("?", ("0.0.0.0/0",), False),
])
def test_allow_lists_addresses_and_networks(host: str, networks: tuple[str, ...], expected: bool) -> None:
    assert allowed(host, networks) is expected


async def test_a_client_outside_agi_allow_gets_nothing(store: Store) -> None:
    server = await serve({"room": RoomService(store, Config(), FakeClock(T0))}, AgiLimits(allow=("192.0.2.0/24",)))
    try:
        assert await refused(server.port)
        assert server.rejected == 1 and server.served == 0
    finally:
        await server.close()
    default = await serve({"room": RoomService(store, Config(), FakeClock(T0))})  # loopback is allowed
    try:
        assert await fake_asterisk(default.port, env_block("room", arg_1="8001")) != []
    finally:
        await default.close()


async def test_connections_per_address_are_capped(store: Store) -> None:
    server = await serve({"room": RoomService(store, Config(), FakeClock(T0))},
                         AgiLimits(max_connections_per_source=1))
    try:
        _, idle = await asyncio.open_connection("127.0.0.1", server.port)  # holds the one place
        while server.active == 0:
            await asyncio.sleep(0.001)
        assert await refused(server.port)
        idle.close()
        while server.active:
            await asyncio.sleep(0.001)
        assert await fake_asterisk(server.port, env_block("room", arg_1="8001")) != []
    finally:
        await server.close()


def test_agi_allow_entries_are_checked(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "pbxsync.toml"
    path.write_text('[agi]\nallow = ["192.0.2.0/24", "lan"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"agi\.allow\[1\]"):
        load_config(path)


# ---- PIN guessing ------------------------------------------------------------------------------------

async def test_guessing_a_pin_over_fastagi_takes_hours_and_the_right_pin_still_works(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    booking_id = await insert_booking(store, "8001", T0, T0 + timedelta(days=30))
    await store.conn.execute("INSERT INTO booking_pins VALUES (?, '424242', '')", (booking_id,))
    clock = InstantClock(T0)
    server = await serve({"room": RoomService(store, Config(conference=ConferenceConfig(pins=True)), clock)})
    guesses = iter(range(100000, 999999))

    def wrong(command: str) -> str:
        return f"200 result={next(guesses)}" if command.startswith("GET DATA") else "200 result=1"

    try:
        with caplog.at_level(logging.WARNING, logger="pbxsync.agi.room"):
            for _ in range(100):  # 300 guesses (three per call), as fast as the server answers
                await fake_asterisk(server.port, env_block("room", callerid="555", arg_1="8001"), wrong)
        print(f"300 wrong PINs took {clock.slept / 3600:.1f} h")
        assert clock.slept >= 3600  # the old server: 1,500 guesses a second
        logged = [r for r in caplog.records if "wrong PIN" in r.getMessage()]
        assert len(logged) <= clock.slept / 60 + 1 < 300  # once a minute at most, not once per guess
        before = clock.slept

        def right(command: str) -> str:
            return "200 result=424242" if command.startswith("GET DATA") else "200 result=1"

        commands = await fake_asterisk(server.port, env_block("room", callerid="102", arg_1="8001"), right)
        assert 'SET VARIABLE PBXSYNC_ROOM_ADMIT "yes"' in commands  # another caller gets in ...
        assert clock.slept - before <= 10.0  # ... after the booking's own (short) wait at most
    finally:
        await server.close()


async def test_new_pins_have_the_configured_length(store: Store) -> None:
    await insert_booking(store, "8001", T0, T0 + timedelta(hours=1))
    assert await ensure_pins(store, T0, 10) == 1
    async with store.conn.execute("SELECT pin FROM booking_pins") as cur:
        (pin,) = [str(r[0]) for r in await cur.fetchall()]
    assert len(pin) == 10 and pin.isdigit()


# ---- private by default ------------------------------------------------------------------------------

def users() -> list[UserConfig]:
    return [UserConfig(extension="101", email=["alice@example.com"], name="Alice"),
            UserConfig(extension="102", email=["bob@example.com"], name="Bob")]


async def test_caller_id_follows_the_phonebooks_sharing_unless_set(store: Store) -> None:
    await add_contact(store, "bob@example.com", "Bob's Private", "+4930123456")
    await add_contact(store, "phonebook@example.com", "Company Book", "+4930999999")
    ldap = LdapConfig(shared_mailboxes=["phonebook@example.com"])
    follows = CallerIdLookup(store, Config(sync=SyncConfig(default_region="DE"), users=users(), ldap=ldap))
    assert (await follows.lookup("030123456", "101")).source == "none"  # bob's private contact stays private
    assert (await follows.lookup("030999999", "101")).name == "Company Book"
    assert (await follows.lookup("030123456", "102")).name == "Bob's Private"  # bob's own
    nothing = CallerIdLookup(store, Config(sync=SyncConfig(default_region="DE"), users=users(),
                                           ldap=LdapConfig(shared_mailboxes=[])))
    assert (await nothing.lookup("030999999", "101")).source == "none"
    everyone = CallerIdLookup(store, Config(sync=SyncConfig(default_region="DE"), users=users(), ldap=ldap,
                                            agi=AgiConfig(callerid_shared_mailboxes=["*"])))
    assert (await everyone.lookup("030123456", "101")).name == "Bob's Private"  # set otherwise on purpose


def test_anonymous_ldap_is_off_by_default() -> None:
    assert LdapConfig().anonymous is False


@pytest.mark.parametrize(("listen", "anonymous", "shared", "warned"), [
    ("192.0.2.10", True, ["*"], True),
    ("", True, ["*"], True),  # every interface
    ("127.0.0.1", True, ["*"], False),
    ("192.0.2.10", False, ["*"], False),
    ("192.0.2.10", True, ["phonebook@example.com"], False),
])
def test_check_warns_about_anonymous_ldap_beyond_loopback_sharing_everything(
        listen: str, anonymous: bool, shared: list[str], warned: bool) -> None:
    config = Config(ldap=LdapConfig(listen=ListenAddress(listen, 389), anonymous=anonymous, shared_mailboxes=shared))
    results = check_ldap_privacy(config)
    assert bool(results) is warned
    if warned:
        assert results[0].passed and results[0].outcome == Outcome.WARN  # the daemon works, but should not
        assert results[0].detail.startswith("anonymous LDAP listens on")
