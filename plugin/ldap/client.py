"""A minimal LDAP client on raw sockets: request encoders and a response decoder.

Used by the tests (to send exactly the bytes a phone sends, including broken ones) and by the benchmark,
where the same client measures pbxsync and slapd without a heavyweight library in the way.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field

from pbxsync.plugin.ldap.ber import (
    ENUMERATED,
    INTEGER,
    OCTET_STRING,
    SEQUENCE,
    SET,
    BerError,
    decode_int,
    decode_text,
    encode_bool,
    encode_int,
    encode_text,
    expect,
    frame_length,
    read_tlv,
    sequence,
    tlv,
)
from pbxsync.plugin.ldap.filters import encode_filter, parse_filter
from pbxsync.plugin.ldap.protocol import (
    ABANDON_REQUEST,
    BIND_REQUEST,
    OID_PAGED_RESULTS,
    OID_SORT_REQUEST,
    SEARCH_DONE,
    SEARCH_ENTRY,
    SEARCH_REQUEST,
    UNBIND_REQUEST,
    encode_control,
)


def message(message_id: int, op: bytes, controls: bytes = b"") -> bytes:
    return sequence(encode_int(message_id), op, tlv(0xA0, controls) if controls else b"")


def bind_request(message_id: int, name: str = "", password: str = "", version: int = 3) -> bytes:
    op = tlv(BIND_REQUEST, encode_int(version) + encode_text(name) + encode_text(password, 0x80))
    return message(message_id, op)


def search_request(message_id: int, base: str, filter_text: str, attributes: tuple[str, ...] = (), *,
                   scope: int = 2, size_limit: int = 0, time_limit: int = 0, types_only: bool = False,
                   controls: bytes = b"") -> bytes:
    op = tlv(SEARCH_REQUEST, encode_text(base) + encode_int(scope, ENUMERATED) + encode_int(0, ENUMERATED)
             + encode_int(size_limit) + encode_int(time_limit) + encode_bool(types_only)
             + encode_filter(parse_filter(filter_text)) + sequence(*(encode_text(a) for a in attributes)))
    return message(message_id, op, controls)


def unbind_request(message_id: int) -> bytes:
    return message(message_id, bytes([UNBIND_REQUEST, 0]))


def abandon_request(message_id: int, target: int) -> bytes:
    return message(message_id, encode_int(target, ABANDON_REQUEST))


def paged_control(size: int, cookie: bytes = b"", critical: bool = False) -> bytes:
    return encode_control(OID_PAGED_RESULTS, sequence(encode_int(size), encode_text(cookie)), critical)


def sort_control(*keys: str, critical: bool = False) -> bytes:
    """Keys like "sn" or "-sn" (reverse)."""
    encoded = [sequence(encode_text(k.lstrip("-")), encode_bool(True, 0x81) if k.startswith("-") else b"")
               for k in keys]
    return encode_control(OID_SORT_REQUEST, sequence(*encoded), critical)


@dataclass
class Response:
    message_id: int
    tag: int
    code: int = -1  # resultCode for result messages
    diagnostic: str = ""
    dn: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)
    controls: dict[str, bytes] = field(default_factory=dict)


def parse_response(raw: bytes) -> Response:
    start, stop = expect(raw, 0, len(raw), SEQUENCE)
    i0, i1 = expect(raw, start, stop, INTEGER)
    tag, o0, o1 = read_tlv(raw, i1, stop)
    response = Response(decode_int(raw, i0, i1, 0), tag)
    if tag == SEARCH_ENTRY:
        d0, d1 = expect(raw, o0, o1, OCTET_STRING)
        response.dn = decode_text(raw, d0, d1)
        a0, a1 = expect(raw, d1, o1, SEQUENCE)
        pos = a0
        while pos < a1:
            p0, p1 = expect(raw, pos, a1, SEQUENCE)
            n0, n1 = expect(raw, p0, p1, OCTET_STRING)
            s0, s1 = expect(raw, n1, p1, SET)
            values = []
            v = s0
            while v < s1:
                v0, v1 = expect(raw, v, s1, OCTET_STRING)
                values.append(decode_text(raw, v0, v1))
                v = v1
            response.attributes[decode_text(raw, n0, n1)] = values
            pos = p1
    elif tag & 0x20 and tag != SEARCH_ENTRY:  # an LDAPResult
        c0, c1 = expect(raw, o0, o1, ENUMERATED)
        response.code = decode_int(raw, c0, c1)
        _m0, m1 = expect(raw, c1, o1, OCTET_STRING)
        t0, t1 = expect(raw, m1, o1, OCTET_STRING)
        response.diagnostic = decode_text(raw, t0, t1)
    if o1 < stop:
        c0, c1 = expect(raw, o1, stop, 0xA0)
        pos = c0
        while pos < c1:
            k0, k1 = expect(raw, pos, c1, SEQUENCE)
            oid0, oid1 = expect(raw, k0, k1, OCTET_STRING)
            value = b""
            p = oid1
            while p < k1:
                vtag, v0, v1 = read_tlv(raw, p, k1)
                if vtag == OCTET_STRING:
                    value = raw[v0:v1]
                p = v1
            response.controls[decode_text(raw, oid0, oid1)] = value
            pos = k1
    return response


def paged_cookie(value: bytes) -> tuple[int, bytes]:
    s0, s1 = expect(value, 0, len(value), SEQUENCE)
    z0, z1 = expect(value, s0, s1, INTEGER)
    c0, c1 = expect(value, z1, s1, OCTET_STRING)
    return decode_int(value, z0, z1), value[c0:c1]


class BlockingClient:
    """One synchronous connection; `search` returns (entries, done)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.next_id = 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(unbind_request(self.next_id))
        self.sock.close()

    def read(self) -> bytes:
        while True:
            size = frame_length(self.buffer, 1 << 30)
            if size is not None:
                raw = bytes(self.buffer[:size])
                del self.buffer[:size]
                return raw
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buffer += chunk

    def bind(self, name: str = "", password: str = "") -> int:
        self.sock.sendall(bind_request(self.next_id, name, password))
        self.next_id += 1
        return parse_response(self.read()).code

    def send_search(self, request: bytes) -> None:
        self.sock.sendall(request)

    def count_until_done(self) -> tuple[int, int]:
        """Read one search's responses without decoding entries: (entries, resultCode)."""
        entries = 0
        while True:
            raw = self.read()
            tag, _, _ = _op_tag(raw)
            if tag == SEARCH_ENTRY:
                entries += 1
            elif tag == SEARCH_DONE:
                return entries, parse_response(raw).code

    def search(self, base: str, filter_text: str, attributes: tuple[str, ...] = (), *, size_limit: int = 0,
               controls: bytes = b"") -> tuple[list[Response], Response]:
        self.sock.sendall(search_request(self.next_id, base, filter_text, attributes, size_limit=size_limit,
                                         controls=controls))
        self.next_id += 1
        entries: list[Response] = []
        while True:
            response = parse_response(self.read())
            if response.tag == SEARCH_DONE:
                return entries, response
            entries.append(response)


def _op_tag(raw: bytes) -> tuple[int, int, int]:
    start, stop = expect(raw, 0, len(raw), SEQUENCE)
    _, i1 = expect(raw, start, stop, INTEGER)
    return read_tlv(raw, i1, stop)


__all__ = ["BerError", "BlockingClient", "Response", "bind_request", "parse_response", "search_request"]
