"""LDAP messages (RFC 4511): decoding requests into plain data and encoding responses.

Only what a read-only phonebook needs is modelled; every other operation still decodes (so that it can
be refused with the right response tag) and anything malformed raises `BerError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pbxsync.plugin.ldap.ber import (
    BOOLEAN,
    ENUMERATED,
    INTEGER,
    OCTET_STRING,
    SEQUENCE,
    BerError,
    decode_bool,
    decode_int,
    decode_text,
    encode_int,
    encode_length,
    encode_text,
    expect,
    read_tlv,
    sequence,
    tlv,
)
from pbxsync.plugin.ldap.filters import Filter, decode_filter

MAX_ATTRIBUTES = 100
MAX_CONTROLS = 16

OID_PAGED_RESULTS = "1.2.840.113556.1.4.319"
OID_SORT_REQUEST = "1.2.840.113556.1.4.473"
OID_SORT_RESPONSE = "1.2.840.113556.1.4.474"
OID_START_TLS = "1.3.6.1.4.1.1466.20037"
OID_NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"


class ResultCode(IntEnum):
    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    TIME_LIMIT_EXCEEDED = 3
    SIZE_LIMIT_EXCEEDED = 4
    COMPARE_FALSE = 5
    COMPARE_TRUE = 6
    AUTH_METHOD_NOT_SUPPORTED = 7
    ADMIN_LIMIT_EXCEEDED = 11
    UNAVAILABLE_CRITICAL_EXTENSION = 12
    NO_SUCH_ATTRIBUTE = 16
    UNDEFINED_ATTRIBUTE_TYPE = 17
    NO_SUCH_OBJECT = 32
    INAPPROPRIATE_AUTHENTICATION = 48
    INVALID_CREDENTIALS = 49
    INSUFFICIENT_ACCESS_RIGHTS = 50
    BUSY = 51
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53


class Scope(IntEnum):
    BASE = 0
    ONE = 1
    SUB = 2


# Application tags of requests and the response tag each one gets.
BIND_REQUEST, BIND_RESPONSE = 0x60, 0x61
UNBIND_REQUEST = 0x42
SEARCH_REQUEST, SEARCH_ENTRY, SEARCH_DONE = 0x63, 0x64, 0x65
MODIFY_REQUEST, MODIFY_RESPONSE = 0x66, 0x67
ADD_REQUEST, ADD_RESPONSE = 0x68, 0x69
DELETE_REQUEST, DELETE_RESPONSE = 0x4A, 0x6B
MODDN_REQUEST, MODDN_RESPONSE = 0x6C, 0x6D
COMPARE_REQUEST, COMPARE_RESPONSE = 0x6E, 0x6F
ABANDON_REQUEST = 0x50
EXTENDED_REQUEST, EXTENDED_RESPONSE = 0x77, 0x78

WRITE_RESPONSES = {
    MODIFY_REQUEST: MODIFY_RESPONSE,
    ADD_REQUEST: ADD_RESPONSE,
    DELETE_REQUEST: DELETE_RESPONSE,
    MODDN_REQUEST: MODDN_RESPONSE,
}


@dataclass(frozen=True, slots=True)
class Control:
    oid: str
    critical: bool
    value: bytes | None


@dataclass(frozen=True, slots=True)
class BindRequest:
    version: int
    name: str
    password: bytes | None  # None: a SASL bind
    sasl_mechanism: str = ""


@dataclass(frozen=True, slots=True)
class UnbindRequest:
    pass


@dataclass(frozen=True, slots=True)
class SearchRequest:
    base: str
    scope: Scope
    size_limit: int
    time_limit: int
    types_only: bool
    filter: Filter
    attributes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AbandonRequest:
    target_id: int


@dataclass(frozen=True, slots=True)
class ExtendedRequest:
    oid: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class CompareRequest:
    dn: str
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """add, modify, delete or modify DN: never performed, only answered with `response_tag`."""

    response_tag: int


Operation = (BindRequest | UnbindRequest | SearchRequest | AbandonRequest | ExtendedRequest | CompareRequest
             | WriteRequest)


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    op: Operation
    controls: tuple[Control, ...]


def decode_message(buf: bytes) -> Message:
    """Decode one complete LDAPMessage (exactly the bytes `frame_length` delimited)."""
    start, stop = expect(buf, 0, len(buf), SEQUENCE)
    if stop != len(buf):
        raise BerError("trailing bytes after the message")
    i0, i1 = expect(buf, start, stop, INTEGER)
    message_id = decode_int(buf, i0, i1, 0)
    # Phones send the same few searches over and over: small ones are decoded once (the plain-data
    # results are immutable, so sharing them is safe). Message ID 0 is never cached: it is an error.
    key = buf[i1:] if message_id and stop - i1 <= _CACHEABLE_BYTES else b""
    cached = _DECODED.get(key) if key else None
    if cached is not None:
        return Message(message_id, cached[0], cached[1])
    tag, o0, o1 = read_tlv(buf, i1, stop)
    op = _decode_op(buf, tag, o0, o1, message_id)
    controls: tuple[Control, ...] = ()
    if o1 < stop:
        ctag, c0, c1 = read_tlv(buf, o1, stop)
        if ctag != 0xA0 or c1 != stop:
            raise BerError("unexpected element after the operation")
        controls = _decode_controls(buf, c0, c1)
    if key and tag == SEARCH_REQUEST:
        if len(_DECODED) >= _CACHE_ENTRIES:
            _DECODED.clear()
        _DECODED[key] = (op, controls)
    return Message(message_id, op, controls)


_CACHEABLE_BYTES = 512
_CACHE_ENTRIES = 2048
_DECODED: dict[bytes, tuple[Operation, tuple[Control, ...]]] = {}


def _decode_op(buf: bytes, tag: int, start: int, stop: int, message_id: int) -> Operation:
    if message_id == 0 and tag != UNBIND_REQUEST:
        raise BerError("message ID 0 is reserved for unsolicited notifications")
    if tag == SEARCH_REQUEST:
        return _decode_search(buf, start, stop)
    if tag == BIND_REQUEST:
        return _decode_bind(buf, start, stop)
    if tag == UNBIND_REQUEST:
        return UnbindRequest()
    if tag == ABANDON_REQUEST:
        return AbandonRequest(decode_int(buf, start, stop, 0))
    if tag == EXTENDED_REQUEST:
        return _decode_extended(buf, start, stop)
    if tag == COMPARE_REQUEST:
        d0, d1 = expect(buf, start, stop, OCTET_STRING)
        s0, s1 = expect(buf, d1, stop, SEQUENCE)
        a0, a1 = expect(buf, s0, s1, OCTET_STRING)
        v0, v1 = expect(buf, a1, s1, OCTET_STRING)
        return CompareRequest(decode_text(buf, d0, d1), decode_text(buf, a0, a1), decode_text(buf, v0, v1))
    if tag in WRITE_RESPONSES:
        return WriteRequest(WRITE_RESPONSES[tag])
    raise BerError(f"unknown operation 0x{tag:02x}")


def _decode_bind(buf: bytes, start: int, stop: int) -> BindRequest:
    v0, v1 = expect(buf, start, stop, INTEGER)
    version = decode_int(buf, v0, v1, 1, 127)
    n0, n1 = expect(buf, v1, stop, OCTET_STRING)
    name = decode_text(buf, n0, n1)
    tag, a0, a1 = read_tlv(buf, n1, stop)
    if a1 != stop:
        raise BerError("trailing bytes in a bind request")
    if tag == 0x80:
        return BindRequest(version, name, buf[a0:a1])
    if tag == 0xA3:
        m0, m1 = expect(buf, a0, a1, OCTET_STRING)
        return BindRequest(version, name, None, decode_text(buf, m0, m1) or "?")
    raise BerError("unknown authentication choice")


def _decode_search(buf: bytes, start: int, stop: int) -> SearchRequest:
    b0, b1 = expect(buf, start, stop, OCTET_STRING)
    s0, s1 = expect(buf, b1, stop, ENUMERATED)
    scope = decode_int(buf, s0, s1)
    if scope not in (0, 1, 2):
        raise BerError(f"unknown search scope {scope}")
    d0, d1 = expect(buf, s1, stop, ENUMERATED)
    decode_int(buf, d0, d1)  # derefAliases: there are no aliases here
    z0, z1 = expect(buf, d1, stop, INTEGER)
    size_limit = decode_int(buf, z0, z1, 0)
    t0, t1 = expect(buf, z1, stop, INTEGER)
    time_limit = decode_int(buf, t0, t1, 0)
    y0, y1 = expect(buf, t1, stop, BOOLEAN)
    types_only = decode_bool(buf, y0, y1)
    filt, pos = decode_filter(buf, y1, stop)
    a0, a1 = expect(buf, pos, stop, SEQUENCE)
    if a1 != stop:
        raise BerError("trailing bytes in a search request")
    attributes: list[str] = []
    pos = a0
    while pos < a1:
        v0, v1 = expect(buf, pos, a1, OCTET_STRING)
        if len(attributes) >= MAX_ATTRIBUTES:
            raise BerError("too many requested attributes")
        attributes.append(decode_text(buf, v0, v1))
        pos = v1
    return SearchRequest(decode_text(buf, b0, b1), Scope(scope), size_limit, time_limit, types_only, filt,
                         tuple(attributes))


def _decode_extended(buf: bytes, start: int, stop: int) -> ExtendedRequest:
    n0, n1 = expect(buf, start, stop, 0x80)
    value: bytes | None = None
    if n1 < stop:
        v0, v1 = expect(buf, n1, stop, 0x81)
        if v1 != stop:
            raise BerError("trailing bytes in an extended request")
        value = buf[v0:v1]
    return ExtendedRequest(decode_text(buf, n0, n1), value)


def _decode_controls(buf: bytes, start: int, stop: int) -> tuple[Control, ...]:
    controls: list[Control] = []
    pos = start
    while pos < stop:
        if len(controls) >= MAX_CONTROLS:
            raise BerError("too many controls")
        c0, c1 = expect(buf, pos, stop, SEQUENCE)
        o0, o1 = expect(buf, c0, c1, OCTET_STRING)
        critical = False
        value: bytes | None = None
        p = o1
        if p < c1:
            tag, v0, v1 = read_tlv(buf, p, c1)
            if tag == BOOLEAN:
                critical = decode_bool(buf, v0, v1)
                p = v1
        if p < c1:
            v0, v1 = expect(buf, p, c1, OCTET_STRING)
            value = buf[v0:v1]
            p = v1
        if p != c1:
            raise BerError("trailing bytes in a control")
        controls.append(Control(decode_text(buf, o0, o1), critical, value))
        pos = c1
    return tuple(controls)


# ---- control values -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PagedResults:
    size: int
    cookie: bytes


def decode_paged_results(value: bytes | None) -> PagedResults:
    if value is None:
        raise BerError("paged results control without a value")
    s0, s1 = expect(value, 0, len(value), SEQUENCE)
    z0, z1 = expect(value, s0, s1, INTEGER)
    c0, c1 = expect(value, z1, s1, OCTET_STRING)
    return PagedResults(decode_int(value, z0, z1, 0), value[c0:c1])


def encode_paged_results(size: int, cookie: bytes) -> bytes:
    return encode_control(OID_PAGED_RESULTS, sequence(encode_int(size), encode_text(cookie)))


@dataclass(frozen=True, slots=True)
class SortKey:
    attr: str
    reverse: bool


def decode_sort_request(value: bytes | None) -> tuple[SortKey, ...]:
    if value is None:
        raise BerError("sort control without a value")
    s0, s1 = expect(value, 0, len(value), SEQUENCE)
    keys: list[SortKey] = []
    pos = s0
    while pos < s1:
        k0, k1 = expect(value, pos, s1, SEQUENCE)
        a0, a1 = expect(value, k0, k1, OCTET_STRING)
        reverse = False
        p = a1
        while p < k1:
            tag, v0, v1 = read_tlv(value, p, k1)
            if tag == 0x81:
                reverse = decode_bool(value, v0, v1)
            elif tag != 0x80:  # 0x80 orderingRule: we only have one ordering
                raise BerError("unknown sort key field")
            p = v1
        keys.append(SortKey(decode_text(value, a0, a1), reverse))
        if len(keys) > 8:
            raise BerError("too many sort keys")
        pos = k1
    if not keys:
        raise BerError("empty sort control")
    return tuple(keys)


def encode_sort_response(code: int, attr: str = "") -> bytes:
    body = encode_int(code, ENUMERATED) + (encode_text(attr, 0x80) if attr else b"")
    return encode_control(OID_SORT_RESPONSE, sequence(body))


def encode_control(oid: str, value: bytes | None = None, critical: bool = False) -> bytes:
    parts = encode_text(oid)
    if critical:
        parts += bytes([BOOLEAN, 1, 0xFF])
    if value is not None:
        parts += encode_text(value)
    return sequence(parts)


# ---- responses ------------------------------------------------------------------------------------

def message_id_prefix(message_id: int) -> bytes:
    return encode_int(message_id)


def wrap(prefix: bytes, op: bytes, controls: bytes = b"") -> bytes:
    """An LDAPMessage from a pre-encoded message ID, operation and (joined) controls."""
    body = prefix + op + (tlv(0xA0, controls) if controls else b"")
    return b"\x30" + encode_length(len(body)) + body


def result_op(tag: int, code: int, diagnostic: str = "", matched_dn: str = "", extra: bytes = b"") -> bytes:
    return tlv(tag, encode_int(code, ENUMERATED) + encode_text(matched_dn) + encode_text(diagnostic) + extra)


def notice_of_disconnection(code: int, diagnostic: str) -> bytes:
    op = result_op(EXTENDED_RESPONSE, code, diagnostic, extra=encode_text(OID_NOTICE_OF_DISCONNECTION, 0x8A))
    return wrap(encode_int(0), op)
