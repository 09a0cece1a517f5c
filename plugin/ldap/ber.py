"""A small, strict BER codec for exactly the subset LDAP uses (RFC 4511 section 5.1).

Hand-written because ldap3's ASN.1 definitions cannot decode nested filters and pyasn1 is slow. Every
read is bounds-checked against the enclosing element, so a hostile PDU raises `BerError` and nothing
else: no recursion here (callers bound nesting), no indefinite lengths, no multi-byte tags, no
length over 4 octets.
"""

from __future__ import annotations

from pbxsync.sync.errors import ValidationError

# Universal tags
BOOLEAN = 0x01
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
ENUMERATED = 0x0A
SEQUENCE = 0x30
SET = 0x31


class BerError(ValidationError):
    """The peer sent bytes that are not a well-formed LDAP PDU: a protocol error."""


def frame_length(buf: bytes | bytearray, max_size: int) -> int | None:
    """Total length of the LDAPMessage at the start of `buf`, None if more bytes are needed.

    Raises BerError when the header is invalid or the message would exceed `max_size`, so the
    connection can be dropped before a single byte of an oversized message is buffered.
    """
    n = len(buf)
    if n < 2:
        return None
    if buf[0] != SEQUENCE:
        raise BerError("an LDAP message must start with a SEQUENCE")
    first = buf[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BerError("indefinite or over-long length")
        if n < 2 + count:
            return None
        total = 2 + count + int.from_bytes(buf[2:2 + count], "big")
    if total > max_size:
        raise BerError(f"message of {total} bytes exceeds the limit of {max_size}")
    return total if n >= total else None


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one element in buf[pos:end]; return (tag, value_start, value_end)."""
    if pos + 2 > end:
        raise BerError("truncated element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tags are not used by LDAP")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise BerError("indefinite or over-long length")
        if pos + count > end:
            raise BerError("truncated length")
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise BerError("element runs past its container")
    return tag, pos, pos + length


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    got, start, stop = read_tlv(buf, pos, end)
    if got != tag:
        raise BerError(f"expected tag 0x{tag:02x}, got 0x{got:02x}")
    return start, stop


def decode_int(buf: bytes, start: int, stop: int, low: int = -(2 ** 31), high: int = 2 ** 31 - 1) -> int:
    if stop - start < 1 or stop - start > 5:
        raise BerError("bad integer length")
    value = int.from_bytes(buf[start:stop], "big", signed=True)
    if not low <= value <= high:
        raise BerError(f"integer {value} out of range")
    return value


def decode_bool(buf: bytes, start: int, stop: int) -> bool:
    if stop - start != 1:
        raise BerError("bad boolean length")
    return buf[start] != 0


def decode_text(buf: bytes, start: int, stop: int) -> str:
    """LDAP strings are UTF-8; invalid bytes become U+FFFD, which matches nothing stored."""
    return buf[start:stop].decode("utf-8", "replace")


# ---- encoding -------------------------------------------------------------------------------------

_SHORT_LENGTHS = [bytes([n]) for n in range(128)]


def encode_length(n: int) -> bytes:
    if n < 128:
        return _SHORT_LENGTHS[n]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def encode_int(value: int, tag: int = INTEGER) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return bytes([tag, len(body)]) + body


def encode_bool(value: bool, tag: int = BOOLEAN) -> bytes:
    return bytes([tag, 1, 0xFF if value else 0x00])


def encode_text(value: str | bytes, tag: int = OCTET_STRING) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return tlv(tag, raw)


def sequence(*parts: bytes, tag: int = SEQUENCE) -> bytes:
    return tlv(tag, b"".join(parts))
