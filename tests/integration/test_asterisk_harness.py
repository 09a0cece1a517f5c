"""The real Asterisk the integration tests run on: it starts, AMI works, it restarts."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.asterisk_harness import AsteriskInstance

pytestmark = pytest.mark.asterisk


async def _raw_login(instance: AsteriskInstance) -> bytes:
    reader, writer = await asyncio.open_connection(instance.host, instance.port)
    try:
        banner = await asyncio.wait_for(reader.readline(), 10)
        writer.write(f"Action: Login\r\nUsername: {instance.user}\r\nSecret: {instance.secret}\r\n"
                     "Events: off\r\nActionID: smoke-1\r\n\r\n".encode())
        await writer.drain()
        reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return banner + reply
    finally:
        writer.close()


async def test_real_asterisk_22_starts_and_answers_ami(asterisk: AsteriskInstance) -> None:
    assert asterisk.host == "127.0.0.1"
    raw = await _raw_login(asterisk)
    assert raw.startswith(b"Asterisk Call Manager/")
    assert b"Response: Success\r\n" in raw
    assert b"ActionID: smoke-1\r\n" in raw
    assert asterisk.cli("core show version").startswith("Asterisk 22.")


async def test_wrong_secret_is_refused(asterisk: AsteriskInstance) -> None:
    asterisk.secret = "wrong"
    raw = await _raw_login(asterisk)
    assert b"Response: Error\r\n" in raw
    assert b"Authentication failed" in raw


async def test_fake_phones_answer_and_no_sip_module_is_loaded(asterisk: AsteriskInstance) -> None:
    dialplan = asterisk.cli("dialplan show fake-phones")
    assert "'_1XX'" in dialplan and "'199'" in dialplan and "'198'" in dialplan
    modules = asterisk.cli("module show like pjsip")
    assert "0 modules loaded" in modules
    async with asterisk.ami() as ami:
        reply = await ami.action("Originate", Channel="Local/101@fake-phones", Application="Wait",
                                 Data="1", Async="true")
        assert reply["Response"] == "Success"
        event = await ami.wait_event(lambda e: e.get("Event") == "OriginateResponse")
        assert event["Response"] == "Success" and event["Reason"] == "4"
    asterisk.wait_for_log("fake phone 101 answering")


async def test_restart_keeps_config_and_port(asterisk: AsteriskInstance) -> None:
    port, first_pid = asterisk.port, asterisk.pid
    asterisk.restart()
    assert asterisk.running and asterisk.pid != first_pid and asterisk.port == port
    assert b"Response: Success\r\n" in await _raw_login(asterisk)
    assert "Asterisk 22." in asterisk.cli("core show version")


async def test_stop_ends_the_process(asterisk: AsteriskInstance) -> None:
    asterisk.stop()
    assert not asterisk.running
    with pytest.raises(OSError):
        await _raw_login(asterisk)
