"""BER framing, message and filter decoding, and the RFC 4515 text form."""

from __future__ import annotations

import pytest

from pbxsync.plugin.ldap.ber import BerError, decode_int, encode_int, encode_length, frame_length, read_tlv, tlv
from pbxsync.plugin.ldap.client import abandon_request, bind_request, paged_control, search_request, unbind_request
from pbxsync.plugin.ldap.filters import (
    And,
    Approx,
    Equality,
    Extensible,
    GreaterOrEqual,
    Not,
    Or,
    Present,
    Substrings,
    decode_filter,
    encode_filter,
    filter_text,
    parse_filter,
)
from pbxsync.plugin.ldap.protocol import (
    AbandonRequest,
    BindRequest,
    ExtendedRequest,
    Scope,
    SearchRequest,
    UnbindRequest,
    decode_message,
    decode_paged_results,
    decode_sort_request,
)


def test_frame_length_waits_for_whole_messages() -> None:
    message = search_request(5, "ou=x", "(cn=a*)")
    assert frame_length(message[:1], 1000) is None
    assert frame_length(message[:-1], 1000) is None
    assert frame_length(message, 1000) == len(message)
    assert frame_length(message + b"\x30", 1000) == len(message)


@pytest.mark.parametrize("header", [b"\x04\x00", b"\x30\x80", b"\x30\x85\x00\x00\x00\x00\x01"])
def test_frame_length_rejects_bad_headers(header: bytes) -> None:
    with pytest.raises(BerError):
        frame_length(header + b"\x00" * 8, 1000)


def test_frame_length_rejects_oversized_before_reading_it() -> None:
    with pytest.raises(BerError, match="exceeds"):
        frame_length(b"\x30\x84\x7f\xff\xff\xff", 65536)


def test_lengths_and_integers_round_trip() -> None:
    for n in (0, 1, 127, 128, 255, 256, 65535, 1 << 24):
        encoded = tlv(0x04, b"\x00" * n) if n < 70000 else None
        if encoded is not None:
            tag, start, stop = read_tlv(encoded, 0, len(encoded))
            assert (tag, stop - start) == (0x04, n)
        assert encode_length(n)[0] == n if n < 128 else encode_length(n)[0] & 0x80
    for value in (0, 1, 127, 128, -1, 2 ** 31 - 1, -(2 ** 31)):
        data = encode_int(value)
        assert decode_int(data, 2, len(data)) == value


def test_read_tlv_never_reads_past_the_container() -> None:
    with pytest.raises(BerError):
        read_tlv(b"\x04\x05abc", 0, 5)
    with pytest.raises(BerError):
        read_tlv(b"\x1f\x01\x01", 0, 3)  # multi-byte tag


def test_decode_bind_search_unbind_abandon() -> None:
    bind = decode_message(bind_request(1, "uid=201,ou=x", "pw", version=2))
    assert bind.message_id == 1 and bind.op == BindRequest(2, "uid=201,ou=x", b"pw")
    search = decode_message(search_request(2, "ou=x", "(|(cn=mül*)(sn=mül*))", ("cn", "telephoneNumber"),
                                           scope=1, size_limit=50, time_limit=3, controls=paged_control(10)))
    assert isinstance(search.op, SearchRequest)
    assert search.op.scope == Scope.ONE and search.op.size_limit == 50 and search.op.time_limit == 3
    assert search.op.filter == Or((Substrings("cn", "mül", (), None), Substrings("sn", "mül", (), None)))
    assert search.op.attributes == ("cn", "telephoneNumber")
    assert search.controls[0].oid == "1.2.840.113556.1.4.319"
    paging = decode_paged_results(search.controls[0].value)
    assert (paging.size, paging.cookie) == (10, b"")
    assert isinstance(decode_message(unbind_request(3)).op, UnbindRequest)
    assert decode_message(abandon_request(4, 2)).op == AbandonRequest(2)


def test_extended_request_and_reserved_message_id() -> None:
    from pbxsync.plugin.ldap.ber import encode_text, sequence

    start_tls = sequence(encode_int(7), tlv(0x77, encode_text("1.3.6.1.4.1.1466.20037", 0x80)))
    assert decode_message(start_tls).op == ExtendedRequest("1.3.6.1.4.1.1466.20037", None)
    with pytest.raises(BerError):
        decode_message(search_request(0, "", "(cn=*)"))


def test_sort_control_value() -> None:
    from pbxsync.plugin.ldap.client import sort_control
    from pbxsync.plugin.ldap.protocol import decode_message as decode

    request = decode(search_request(1, "", "(cn=*)", controls=sort_control("sn", "-givenName")))
    keys = decode_sort_request(request.controls[0].value)
    assert [(k.attr, k.reverse) for k in keys] == [("sn", False), ("givenName", True)]


VENDOR_FILTERS = [
    "(|(cn=mül*)(sn=mül*))",
    "(|(telephoneNumber=*4711*)(mobile=*4711*)(homePhone=*4711*))",
    "(&(telephoneNumber=*)(sn=a*))",
    "(!(cn=x))",
    "(&(sn>=M)(sn<=Mz))",
    "(cn~=muller)",
    "(cn=a*b*c)",
    "(cn=*x)",
    "(cn:caseExactMatch:=Foo)",
    "(cn=\\2a\\28\\29\\5c)",
    "(&)",
    "(|)",
]


@pytest.mark.parametrize("text", VENDOR_FILTERS)
def test_filters_round_trip_through_ber(text: str) -> None:
    parsed = parse_filter(text)
    encoded = encode_filter(parsed)
    decoded, end = decode_filter(encoded, 0, len(encoded))
    assert decoded == parsed and end == len(encoded)
    assert parse_filter(filter_text(parsed)) == parsed


def test_parse_filter_shapes() -> None:
    assert parse_filter("(cn=*)") == Present("cn")
    assert parse_filter("cn=x") == Equality("cn", "x")
    assert parse_filter("(cn=a*b*c)") == Substrings("cn", "a", ("b",), "c")
    assert parse_filter("(!(sn>=k))") == Not(GreaterOrEqual("sn", "k"))
    assert parse_filter("(cn~=x)") == Approx("cn", "x")
    assert parse_filter("(cn:dn:1.2.3:=v)") == Extensible("1.2.3", "cn", "v", True)
    assert parse_filter("(&(a=1)(b=2))") == And((Equality("a", "1"), Equality("b", "2")))
    for bad in ("(cn=x", "(cn)", "((cn=x))", "(!(a=1)(b=2))", "(cn=\\zz)"):
        with pytest.raises(ValueError):
            parse_filter(bad)


def test_nesting_and_size_of_filters_are_bounded() -> None:
    inner = b"\x87\x02cn"
    for _ in range(100):
        inner = b"\xa2" + encode_length(len(inner)) + inner
    with pytest.raises(BerError, match="deeply"):
        decode_filter(inner, 0, len(inner))
    wide = b"".join(b"\x87\x02cn" for _ in range(1000))
    wide = b"\xa1" + encode_length(len(wide)) + wide
    with pytest.raises(BerError, match="too many"):
        decode_filter(wide, 0, len(wide))


def test_substrings_must_be_ordered() -> None:
    from pbxsync.plugin.ldap.ber import encode_text, sequence

    out_of_order = tlv(0xA4, encode_text("cn") + sequence(encode_text("a", 0x82), encode_text("b", 0x80)))
    with pytest.raises(BerError):
        decode_filter(out_of_order, 0, len(out_of_order))
