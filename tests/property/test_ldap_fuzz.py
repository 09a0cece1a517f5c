"""Hostile bytes never crash, hang or leak the LDAP server; the query planner never loses a match."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxsync.plugin.ldap import LdapServer
from pbxsync.plugin.ldap.ber import BerError, frame_length
from pbxsync.plugin.ldap.build import build_index
from pbxsync.plugin.ldap.client import bind_request, paged_control, search_request, sort_control
from pbxsync.plugin.ldap.filters import (
    And,
    Approx,
    Equality,
    Filter,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Present,
    Substrings,
    decode_filter,
    encode_filter,
)
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import Scope, SearchRequest, decode_message
from pbxsync.plugin.ldap.query import candidates, compile_filter
from pbxsync.plugin.ldap.schema import attribute_index
from pbxsync.plugin.ldap.search import run_search
from tests.support.ldap_phonebook import BASE_DN, make_config, make_store
from tests.support.sample_contacts import generate

VALID = [
    bind_request(1, "uid=201," + BASE_DN, "pw"),
    search_request(2, BASE_DN, "(|(cn=*mül*)(telephoneNumber=*4711*))", ("cn", "sn"), size_limit=50),
    search_request(3, BASE_DN, "(&(sn>=M)(!(sn<=Mz))(cn~=x)(cn:dn:1.2:=v))",
                   controls=paged_control(2) + sort_control("sn")),
]


@given(st.binary(max_size=512))
@settings(max_examples=600)
def test_random_bytes_decode_or_raise_ber_error(data: bytes) -> None:
    try:
        size = frame_length(data, 4096)
        if size is not None:
            decode_message(data[:size])
    except BerError:
        pass


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    message = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        pos = draw(st.integers(0, len(message) - 1))
        if kind == "flip":
            message[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del message[pos:]
        elif kind == "insert":
            message[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            message[pos:pos + 1] = draw(st.sampled_from([b"\x84\xff\xff\xff\xff", b"\x80", b"\x81\x00", b"\x7f"]))
        if not message:
            break
    return bytes(message)


@given(mutated())
@settings(max_examples=800)
def test_mutated_messages_decode_or_raise_ber_error(data: bytes) -> None:
    with contextlib.suppress(BerError):
        decode_message(data)


ATTRS = ["cn", "sn", "givenName", "telephoneNumber", "mobile", "homePhone", "objectClass", "ipPhone", "o"]
WORDS = ["mül", "Mill", "er", "anna", "4711", "030", "+49", "1", "ß", "Ö", "", " ", "person", "0049 30", "0", "00",
         "004930", "04930", "0221", "9301", "0171", "+49 171", "49"]


def leaves() -> st.SearchStrategy[Filter]:
    attr = st.sampled_from(ATTRS)
    word = st.sampled_from(WORDS)
    return st.one_of(
        st.builds(Equality, attr, word),
        st.builds(Present, attr),
        st.builds(GreaterOrEqual, attr, word),
        st.builds(LessOrEqual, attr, word),
        st.builds(Approx, attr, word),
        st.builds(Substrings, attr, st.one_of(st.none(), word.filter(bool)),
                  st.lists(word.filter(bool), max_size=2).map(tuple), st.one_of(st.none(), word.filter(bool)))
        .filter(lambda s: s.initial is not None or s.final is not None or bool(s.any)),  # BER needs one part
    )


filters = st.recursive(leaves(), lambda inner: st.one_of(
    st.builds(And, st.lists(inner, max_size=3).map(tuple)),
    st.builds(Or, st.lists(inner, max_size=3).map(tuple)),
    st.builds(Not, inner)), max_leaves=8)

FORMS = NumberForms("DE")


def _rows() -> list:  # type: ignore[type-arg]
    from pbxsync.plugin.ldap.build import ContactRow, PhoneRow
    from pbxsync.sync.phones import normalise_number

    rows = []
    for c in generate(300, seed=7, mailboxes=("a@x", "b@x")):
        phones = []
        for kind, raw in c.phones:
            n = normalise_number(raw, "DE")
            phones.append(PhoneRow(kind, raw, n.e164, n.digits))
        rows.append((ContactRow(c.mailbox, c.item_id, c.display_name, c.given_name, c.surname, c.company, c.title,
                                "[]"), phones))
    return rows


INDEX = build_index(_rows(), BASE_DN, FORMS)


@given(filters)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_planner_finds_exactly_what_a_full_scan_finds(f: Filter) -> None:
    encoded = encode_filter(f)
    decoded, _ = decode_filter(encoded, 0, len(encoded))
    assert decoded == f
    match = compile_filter(f, FORMS)
    truth = [e.eid for e in INDEX.entries if match(e) is True]
    request = SearchRequest(BASE_DN, Scope.ONE, 0, 0, False, f, ())
    outcome = run_search(INDEX, request, None, FORMS, size_cap=0, time_cap=0, now=lambda: 0.0)
    assert [e.eid for e in outcome.entries] == truth
    planned = candidates(f, INDEX, FORMS)
    if planned is not None:
        ids = list(planned)
        assert ids == sorted(set(ids))


NUMBER_FORMS = {attr: sorted({form for e in INDEX.entries for form in e.folded(attribute_index(attr) or 0)})
                for attr in ("telephoneNumber", "mobile", "homePhone")}


@st.composite
def number_fragments(draw: st.DrawFn) -> tuple[str, str]:
    """An attribute and a piece of one of its numbers in one of its forms: across the 00/0 prefixes,
    inside, whole."""
    attr = draw(st.sampled_from(sorted(NUMBER_FORMS)))
    form = draw(st.sampled_from(NUMBER_FORMS[attr]))
    start = draw(st.integers(0, len(form) - 1))
    return attr, form[start:draw(st.integers(start + 1, len(form)))]


@given(number_fragments(), st.sampled_from(["equality", "initial", "any", "final"]))
@settings(max_examples=400)
def test_number_fragments_in_every_form_are_found(piece: tuple[str, str], where: str) -> None:
    attr, fragment = piece
    f: Filter = Equality(attr, fragment) if where == "equality" else Substrings(
        attr, fragment if where == "initial" else None, (fragment,) if where == "any" else (),
        fragment if where == "final" else None)
    match = compile_filter(f, FORMS)
    truth = [e.eid for e in INDEX.entries if match(e) is True]
    assert truth or where != "any"  # the fragment comes from a stored form
    outcome = run_search(INDEX, SearchRequest(BASE_DN, Scope.ONE, 0, 0, False, f, ()), None, FORMS,
                         size_cap=0, time_cap=0, now=lambda: 0.0)
    assert [e.eid for e in outcome.entries] == truth
    limited = run_search(INDEX, SearchRequest(BASE_DN, Scope.ONE, 3, 0, False, f, ()), None, FORMS,
                         size_cap=0, time_cap=0, now=lambda: 0.0)
    assert [e.eid for e in limited.entries] == truth[:3]


# ---- the live server under fuzz ---------------------------------------------------------------------

class ServerThread:
    """A server on its own event loop thread, so hypothesis can drive it with blocking sockets."""

    def __init__(self, db: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = LdapServer(make_config(db, max_request_bytes=4096, max_connections=50), db)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        self.port = self.server.addresses[0][1]

    def connections(self) -> int:
        async def count() -> int:
            return len(self.server.connections)
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    db = asyncio.run(make_store(tmp_path_factory.mktemp("ldapfuzz") / "pbxsync.db"))
    server = ServerThread(db)
    yield server
    server.stop()


def _exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(received)
            received += chunk


def _healthy(port: int) -> None:
    reply = _exchange(port, search_request(1, BASE_DN, "(sn=king)", ("cn",)))
    assert b"Carol King" in reply


@given(st.one_of(st.binary(max_size=300), mutated(), st.lists(mutated(), max_size=4).map(b"".join)))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_live_server_survives_hostile_connections(live: ServerThread, payload: bytes) -> None:
    _exchange(live.port, payload)  # whatever comes back, the connection ends (no hang: 10 s socket timeout)
    _healthy(live.port)


def test_live_server_does_not_leak_connections(live: ServerThread) -> None:
    for payload in (b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\x02\x01", b"junk" * 100, VALID[1]):
        _exchange(live.port, payload)
    _healthy(live.port)
    deadline = 200
    while live.connections() and deadline:
        threading.Event().wait(0.05)
        deadline -= 1
    assert live.connections() == 0
