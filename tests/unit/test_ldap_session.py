"""The sans-IO LDAP session: request bytes in, response bytes out, no socket and no event loop."""

from __future__ import annotations

from pbxsync.plugin.ldap.access import Access
from pbxsync.plugin.ldap.ber import frame_length
from pbxsync.plugin.ldap.build import ContactRow, PhoneRow, build_index
from pbxsync.plugin.ldap.client import Response, bind_request, parse_response, search_request, unbind_request
from pbxsync.plugin.ldap.directory import Directory
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import (
    BIND_RESPONSE,
    EXTENDED_RESPONSE,
    SEARCH_DONE,
    SEARCH_ENTRY,
    ResultCode,
)
from pbxsync.plugin.ldap.session import LdapSession
from pbxsync.sync.config import Config, LdapConfig
from pbxsync.sync.secrets import Secret

BASE_DN = "ou=phonebook,dc=example,dc=com"
FORMS = NumberForms("DE")
ROWS = [
    (ContactRow("a@x", "1", "Jürgen Müller", "Jürgen", "Müller", "ACME", "", '["jm@acme.example"]'),
     [PhoneRow("business", "030 1234 4711", "+493012344711", "03012344711")]),
    (ContactRow("a@x", "2", "Anna Schmidt", "Anna", "Schmidt", "", "", "[]"), []),
]


def session(anonymous: bool = True) -> LdapSession:
    settings = LdapConfig(base_dn=BASE_DN, anonymous=anonymous, bind_dn=f"cn=service,{BASE_DN}",
                          bind_password=Secret("service-secret"))
    config = Config(ldap=settings)
    directory = Directory(settings, Access(config), FORMS, build_index(ROWS, BASE_DN, FORMS), clock=lambda: 0.0)
    return LdapSession(directory, peer="test")


def exchange(s: LdapSession, *requests: bytes) -> list[Response]:
    """Feed the requests (as one chunk), answer all of them, decode every response sent."""
    s.receive(b"".join(requests))
    while s.handle_next():
        pass
    out = s.data_to_send()
    responses = []
    while out:
        size = frame_length(out, 1 << 20)
        assert size is not None
        responses.append(parse_response(out[:size]))
        out = out[size:]
    return responses


def test_bind_as_the_service_account_and_with_a_wrong_password() -> None:
    s = session(anonymous=False)
    ok, refused = exchange(s, bind_request(1, f"cn=service,{BASE_DN}", "service-secret"),
                           bind_request(2, f"cn=service,{BASE_DN}", "wrong"))
    assert (ok.message_id, ok.tag, ok.code) == (1, BIND_RESPONSE, ResultCode.SUCCESS)
    assert (refused.message_id, refused.tag, refused.code) == (2, BIND_RESPONSE, ResultCode.INVALID_CREDENTIALS)
    assert s.view is None  # after a failed bind the connection is anonymous, and anonymous is off
    assert not s.closing


def test_search_answers_entries_then_done_and_requests_may_arrive_in_pieces() -> None:
    s = session()
    request = search_request(3, BASE_DN, "(cn=jürgen*)", ("cn", "telephoneNumber"))
    s.receive(request[:5])
    assert not s.handle_next() and s.data_to_send() == b""  # half a message: nothing to answer yet
    entry, done = exchange(s, request[5:])
    assert entry.tag == SEARCH_ENTRY and entry.dn.endswith("," + BASE_DN)
    assert entry.attributes == {"cn": ["Jürgen Müller"], "telephoneNumber": ["030 1234 4711"]}
    assert (done.message_id, done.tag, done.code) == (3, SEARCH_DONE, ResultCode.SUCCESS)
    assert s.directory.searches == 1


def test_search_before_bind_is_refused_when_anonymous_access_is_off() -> None:
    (done,) = exchange(session(anonymous=False), search_request(1, BASE_DN, "(cn=*)"))
    assert (done.tag, done.code) == (SEARCH_DONE, ResultCode.INSUFFICIENT_ACCESS_RIGHTS)


def test_unbind_closes_without_an_answer_and_later_requests_are_ignored() -> None:
    s = session()
    assert exchange(s, unbind_request(1), search_request(2, BASE_DN, "(cn=*)")) == []
    assert s.closing
    s.receive(search_request(3, BASE_DN, "(cn=*)"))
    assert not s.handle_next() and s.data_to_send() == b""


def test_malformed_ber_gets_a_notice_of_disconnection_and_closes() -> None:
    s = session()
    (notice,) = exchange(s, b"\x04\x03abc")  # an OCTET STRING where an LDAPMessage SEQUENCE must be
    assert (notice.message_id, notice.tag, notice.code) == (0, EXTENDED_RESPONSE, ResultCode.PROTOCOL_ERROR)
    assert s.closing


def test_a_message_that_does_not_decode_closes_after_the_answers_before_it() -> None:
    s = session()
    broken = b"\x30\x03\x02\x01\x05"  # a SEQUENCE holding only a message ID: no operation
    entry, done, notice = exchange(s, search_request(1, BASE_DN, "(sn=schmidt)"), broken)
    assert entry.tag == SEARCH_ENTRY and entry.attributes["sn"] == ["Schmidt"]
    assert (done.tag, done.code) == (SEARCH_DONE, ResultCode.SUCCESS)
    assert (notice.tag, notice.code) == (EXTENDED_RESPONSE, ResultCode.PROTOCOL_ERROR)
    assert s.closing


def test_input_piling_up_beyond_the_limit_is_a_protocol_error() -> None:
    s = session()
    limit = s.directory.settings.max_request_bytes
    s.receive(b"\x30" + b"\x84" + (limit - 1).to_bytes(4, "big") + b"\x00" * (2 * limit))
    assert s.closing
    notice = parse_response(s.data_to_send())
    assert (notice.tag, notice.code) == (EXTENDED_RESPONSE, ResultCode.PROTOCOL_ERROR)
