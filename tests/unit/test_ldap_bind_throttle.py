"""Wrong LDAP binds are slowed down per (source, account) and per source; the real user gets in.

The sessions run on a fake clock: a throttled bind reports the moment it may be checked in `resume_at`,
and the test moves the clock there, so a thousand wrong binds "take" minutes without the test waiting.
"""

from __future__ import annotations

import logging

import pytest

from pbxsync.plugin.ldap.access import Access
from pbxsync.plugin.ldap.ber import frame_length
from pbxsync.plugin.ldap.build import build_index
from pbxsync.plugin.ldap.client import Response, bind_request, parse_response
from pbxsync.plugin.ldap.directory import Directory
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import BIND_RESPONSE, ResultCode
from pbxsync.plugin.ldap.session import LdapSession
from pbxsync.plugin.ldap.throttle import ACCOUNT, SOURCE
from pbxsync.sync.config import Config, LdapConfig
from pbxsync.sync.secrets import Secret

BASE_DN = "ou=phonebook,dc=example,dc=com"
SERVICE = f"cn=service,{BASE_DN}"
FORMS = NumberForms("DE")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def directory(clock: Clock) -> Directory:
    settings = LdapConfig(base_dn=BASE_DN, anonymous=False, bind_dn=SERVICE, bind_password=Secret("service-secret"))
    return Directory(settings, Access(Config(ldap=settings)), FORMS, build_index([], BASE_DN, FORMS), clock=clock)


def responses(s: LdapSession) -> list[Response]:
    out = s.data_to_send()
    found = []
    while out:
        size = frame_length(out, 1 << 20)
        assert size is not None
        found.append(parse_response(out[:size]))
        out = out[size:]
    return found


def attempt(s: LdapSession, clock: Clock, password: str, message_id: int = 1) -> tuple[int, float]:
    """One bind answered, the clock moved over any wait: (result code, seconds waited)."""
    started = clock.now
    s.receive(bind_request(message_id, SERVICE, password))
    while s.step(float("inf")):
        assert s.resume_at is not None, "a bind never needs more than its wait"
        clock.now = max(clock.now, s.resume_at)
    (answer,) = [r for r in responses(s) if r.tag == BIND_RESPONSE]
    return answer.code, clock.now - started


def test_a_thousand_wrong_binds_take_minutes_and_the_right_password_still_works() -> None:
    clock = Clock()
    d = directory(clock)
    started = clock.now
    s = LdapSession(d, peer="192.0.2.66:40000")
    for n in range(1000):
        if s.closing:  # closed after max_bind_failures: the guesser reconnects
            s = LdapSession(d, peer=f"192.0.2.66:{40001 + n}")
        code, _ = attempt(s, clock, f"guess-{n}")
        assert code == ResultCode.INVALID_CREDENTIALS
    took = clock.now - started
    print(f"1000 wrong binds took {took / 60:.0f} minutes")
    assert took >= 600, f"1000 wrong binds took {took:.0f} s"  # minutes (the old server: 1.8 s for 20,000)
    code, waited = attempt(LdapSession(d, peer="192.0.2.66:50000"), clock, "service-secret")
    assert code == ResultCode.SUCCESS and waited <= ACCOUNT.longest
    # ... and, that account's count cleared by the success, the next right bind waits for the address's
    # own (shorter) delay at most
    code, waited = attempt(LdapSession(d, peer="192.0.2.66:50001"), clock, "service-secret")
    assert code == ResultCode.SUCCESS and waited <= SOURCE.longest


def test_the_real_user_at_another_address_is_not_slowed_by_the_guesser() -> None:
    clock = Clock()
    d = directory(clock)
    for n in range(50):
        s = LdapSession(d, peer=f"192.0.2.66:{40000 + n}")
        attempt(s, clock, f"guess-{n}")
    assert attempt(LdapSession(d, peer="192.0.2.10:1234"), clock, "service-secret") == (ResultCode.SUCCESS, 0.0)


def test_parallel_connections_queue_behind_each_other() -> None:
    clock = Clock()
    d = directory(clock)
    for n in range(5):  # past the free tries
        attempt(LdapSession(d, peer=f"192.0.2.66:{n}"), clock, "wrong")
    waits = []
    for n in range(20):  # twenty guesses sent at the same instant on twenty connections
        s = LdapSession(d, peer=f"192.0.2.66:{100 + n}")
        s.receive(bind_request(1, SERVICE, f"parallel-{n}"))
        assert s.step(float("inf")) and s.resume_at is not None
        waits.append(s.resume_at - clock.now)
    assert waits == sorted(waits) and waits[-1] - waits[0] >= 19 * 0.5  # one after the other, not side by side


def test_failures_are_forgiven_over_time() -> None:
    clock = Clock()
    d = directory(clock)
    for n in range(20):
        attempt(LdapSession(d, peer=f"192.0.2.66:{n}"), clock, "wrong")
    clock.now += 4 * 3600  # hours of silence: the counts decayed
    assert attempt(LdapSession(d, peer="192.0.2.66:999"), clock, "wrong") == (ResultCode.INVALID_CREDENTIALS, 0.0)


def test_the_connection_is_closed_after_max_bind_failures() -> None:
    clock = Clock()
    s = LdapSession(directory(clock), peer="192.0.2.66:1")
    for n in range(5):
        assert not s.closing
        attempt(s, clock, "wrong", n + 1)
    assert s.closing


def test_anonymous_binds_are_not_throttled() -> None:
    clock = Clock()
    d = directory(clock)
    for n in range(30):
        s = LdapSession(d, peer=f"192.0.2.66:{n}")
        s.receive(bind_request(1, "", ""))
        assert not s.step(float("inf")) and s.resume_at is None


def test_repeated_failures_are_logged_once_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    d = directory(clock)
    with caplog.at_level(logging.INFO, logger="pbxsync.ldap"):
        for n in range(100):
            attempt(LdapSession(d, peer=f"192.0.2.66:{n}"), clock, "wrong")
            if clock.now - 1000.0 > 20:  # the next wait could reach past the minute
                break
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
