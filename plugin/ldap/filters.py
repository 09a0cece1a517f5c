"""LDAP search filters (RFC 4511 section 4.5.1): the plain-data tree and its BER decoder.

Decoding is iterative-safe by construction: nesting depth and the total number of nodes are capped, so
a hostile filter costs bounded time and stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbxsync.plugin.ldap.ber import OCTET_STRING, SEQUENCE, BerError, decode_bool, decode_text, expect, read_tlv

MAX_FILTER_DEPTH = 32
MAX_FILTER_NODES = 512


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Filter


@dataclass(frozen=True, slots=True)
class Equality:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class Substrings:
    attr: str
    initial: str | None
    any: tuple[str, ...]
    final: str | None


@dataclass(frozen=True, slots=True)
class Present:
    attr: str


@dataclass(frozen=True, slots=True)
class GreaterOrEqual:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class LessOrEqual:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class Approx:
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class Extensible:
    """Parsed so that it is not a protocol error; evaluates to Undefined (no matching rules offered)."""

    rule: str
    attr: str
    value: str
    dn_attributes: bool


Filter = And | Or | Not | Equality | Substrings | Present | GreaterOrEqual | LessOrEqual | Approx | Extensible

_AND, _OR, _NOT, _EQ, _SUB, _GE, _LE, _PRESENT, _APPROX, _EXT = (
    0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0x87, 0xA8, 0xA9)


class _Budget:
    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes = 0


def decode_filter(buf: bytes, pos: int, end: int) -> tuple[Filter, int]:
    """Decode the filter element at buf[pos:end]; return it and the position after it."""
    tag, start, stop = read_tlv(buf, pos, end)
    return _decode(buf, tag, start, stop, 0, _Budget()), stop


def _decode(buf: bytes, tag: int, start: int, stop: int, depth: int, budget: _Budget) -> Filter:
    budget.nodes += 1
    if budget.nodes > MAX_FILTER_NODES:
        raise BerError("filter has too many elements")
    if depth > MAX_FILTER_DEPTH:
        raise BerError("filter nested too deeply")
    if tag in (_AND, _OR):
        children: list[Filter] = []
        pos = start
        while pos < stop:
            ctag, cstart, cstop = read_tlv(buf, pos, stop)
            children.append(_decode(buf, ctag, cstart, cstop, depth + 1, budget))
            pos = cstop
        return And(tuple(children)) if tag == _AND else Or(tuple(children))
    if tag == _NOT:
        ctag, cstart, cstop = read_tlv(buf, start, stop)
        if cstop != stop:
            raise BerError("trailing bytes after a not filter")
        return Not(_decode(buf, ctag, cstart, cstop, depth + 1, budget))
    if tag == _PRESENT:
        return Present(decode_text(buf, start, stop))
    if tag in (_EQ, _GE, _LE, _APPROX):
        a0, a1 = expect(buf, start, stop, OCTET_STRING)
        v0, v1 = expect(buf, a1, stop, OCTET_STRING)
        if v1 != stop:
            raise BerError("trailing bytes in an attribute value assertion")
        attr, value = decode_text(buf, a0, a1), decode_text(buf, v0, v1)
        if tag == _EQ:
            return Equality(attr, value)
        if tag == _GE:
            return GreaterOrEqual(attr, value)
        if tag == _LE:
            return LessOrEqual(attr, value)
        return Approx(attr, value)
    if tag == _SUB:
        return _decode_substrings(buf, start, stop)
    if tag == _EXT:
        return _decode_extensible(buf, start, stop)
    raise BerError(f"unknown filter choice 0x{tag:02x}")


def _decode_substrings(buf: bytes, start: int, stop: int) -> Substrings:
    a0, a1 = expect(buf, start, stop, OCTET_STRING)
    s0, s1 = expect(buf, a1, stop, SEQUENCE)
    if s1 != stop:
        raise BerError("trailing bytes in a substrings filter")
    initial: str | None = None
    final: str | None = None
    anys: list[str] = []
    pos = s0
    while pos < s1:
        tag, v0, v1 = read_tlv(buf, pos, s1)
        text = decode_text(buf, v0, v1)
        if tag == 0x80 and initial is None and not anys and final is None:
            initial = text
        elif tag == 0x81 and final is None:
            anys.append(text)
        elif tag == 0x82 and final is None:
            final = text
        else:
            raise BerError("substrings out of order or repeated")
        pos = v1
    if initial is None and final is None and not anys:
        raise BerError("empty substrings filter")
    return Substrings(decode_text(buf, a0, a1), initial, tuple(anys), final)


def _decode_extensible(buf: bytes, start: int, stop: int) -> Extensible:
    rule = attr = value = ""
    dn_attributes = False
    seen_value = False
    pos = start
    while pos < stop:
        tag, v0, v1 = read_tlv(buf, pos, stop)
        if tag == 0x81:
            rule = decode_text(buf, v0, v1)
        elif tag == 0x82:
            attr = decode_text(buf, v0, v1)
        elif tag == 0x83:
            value, seen_value = decode_text(buf, v0, v1), True
        elif tag == 0x84:
            dn_attributes = decode_bool(buf, v0, v1)
        else:
            raise BerError(f"unknown extensible match field 0x{tag:02x}")
        pos = v1
    if not seen_value:
        raise BerError("extensible match without a value")
    return Extensible(rule, attr, value, dn_attributes)


def _escape(value: str) -> str:
    return "".join(f"\\{ord(c):02x}" if c in "*()\\\0" else c for c in value)


def filter_text(f: Filter) -> str:
    """RFC 4515 text form, for logs and tests."""
    if isinstance(f, And):
        return "(&" + "".join(filter_text(c) for c in f.children) + ")"
    if isinstance(f, Or):
        return "(|" + "".join(filter_text(c) for c in f.children) + ")"
    if isinstance(f, Not):
        return "(!" + filter_text(f.child) + ")"
    if isinstance(f, Equality):
        return f"({f.attr}={_escape(f.value)})"
    if isinstance(f, Substrings):
        parts = [_escape(f.initial or ""), *(_escape(a) for a in f.any), _escape(f.final or "")]
        return f"({f.attr}=" + "*".join(parts) + ")"
    if isinstance(f, Present):
        return f"({f.attr}=*)"
    if isinstance(f, GreaterOrEqual):
        return f"({f.attr}>={_escape(f.value)})"
    if isinstance(f, LessOrEqual):
        return f"({f.attr}<={_escape(f.value)})"
    if isinstance(f, Approx):
        return f"({f.attr}~={_escape(f.value)})"
    rule = f":{f.rule}" if f.rule else ""
    dn = ":dn" if f.dn_attributes else ""
    return f"({f.attr}{dn}{rule}:={_escape(f.value)})"


# ---- encoding and the RFC 4515 text form (used by the benchmark client and the tests) --------------

def encode_filter(f: Filter) -> bytes:
    from pbxsync.plugin.ldap.ber import encode_bool, encode_text, sequence, tlv

    if isinstance(f, And | Or):
        return tlv(_AND if isinstance(f, And) else _OR, b"".join(encode_filter(c) for c in f.children))
    if isinstance(f, Not):
        return tlv(_NOT, encode_filter(f.child))
    if isinstance(f, Present):
        return encode_text(f.attr, _PRESENT)
    if isinstance(f, Equality | GreaterOrEqual | LessOrEqual | Approx):
        tag = {Equality: _EQ, GreaterOrEqual: _GE, LessOrEqual: _LE, Approx: _APPROX}[type(f)]
        return tlv(tag, encode_text(f.attr) + encode_text(f.value))
    if isinstance(f, Substrings):
        parts = []
        if f.initial is not None:
            parts.append(encode_text(f.initial, 0x80))
        parts.extend(encode_text(a, 0x81) for a in f.any)
        if f.final is not None:
            parts.append(encode_text(f.final, 0x82))
        return tlv(_SUB, encode_text(f.attr) + sequence(*parts))
    body = b""
    if f.rule:
        body += encode_text(f.rule, 0x81)
    if f.attr:
        body += encode_text(f.attr, 0x82)
    body += encode_text(f.value, 0x83)
    if f.dn_attributes:
        body += encode_bool(True, 0x84)
    return tlv(_EXT, body)


def _unescape(text: str) -> str:
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        if raw[i] == 0x5C:  # backslash + two hex digits
            try:
                out.append(int(raw[i + 1:i + 3].decode("ascii"), 16))
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"bad escape in filter value {text!r}") from None
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def parse_filter(text: str) -> Filter:
    """Parse the RFC 4515 string form; raises ValueError on malformed input."""
    f, pos = _parse(text.strip(), 0, 0)
    if pos != len(text.strip()):
        raise ValueError(f"trailing characters in filter {text!r}")
    return f


def _parse(text: str, pos: int, depth: int) -> tuple[Filter, int]:
    if depth > MAX_FILTER_DEPTH:
        raise ValueError("filter nested too deeply")
    if pos >= len(text) or text[pos] != "(":
        if depth == 0 and pos < len(text):  # a bare "cn=x" is accepted, like ldapsearch does
            return _parse("(" + text + ")", 0, 1)[0], len(text)
        raise ValueError(f"expected '(' at {pos} in {text!r}")
    pos += 1
    if pos < len(text) and text[pos] in "&|!":
        op = text[pos]
        pos += 1
        children: list[Filter] = []
        while pos < len(text) and text[pos] == "(":
            child, pos = _parse(text, pos, depth + 1)
            children.append(child)
        if pos >= len(text) or text[pos] != ")":
            raise ValueError(f"expected ')' at {pos} in {text!r}")
        if op == "!":
            if len(children) != 1:
                raise ValueError("'!' takes exactly one filter")
            return Not(children[0]), pos + 1
        return (And if op == "&" else Or)(tuple(children)), pos + 1
    close = pos
    while close < len(text) and text[close] != ")":
        close += 1
    if close >= len(text):
        raise ValueError(f"unbalanced parentheses in {text!r}")
    item = text[pos:close]
    for symbol, cls in ((">=", GreaterOrEqual), ("<=", LessOrEqual), ("~=", Approx)):
        if symbol in item:
            attr, value = item.split(symbol, 1)
            return cls(attr.strip(), _unescape(value)), close + 1
    if ":=" in item:
        left, value = item.split(":=", 1)
        bits = left.split(":")
        dn = "dn" in [b.lower() for b in bits[1:]]
        rule = next((b for b in bits[1:] if b.lower() != "dn"), "")
        return Extensible(rule, bits[0], _unescape(value), dn), close + 1
    if "=" not in item:
        raise ValueError(f"no '=' in filter item {item!r}")
    attr, value = item.split("=", 1)
    attr = attr.strip()
    if not attr:
        raise ValueError(f"empty attribute in {item!r}")
    if value == "*":
        return Present(attr), close + 1
    if "*" not in value:
        return Equality(attr, _unescape(value)), close + 1
    pieces = value.split("*")
    initial = _unescape(pieces[0]) if pieces[0] else None
    final = _unescape(pieces[-1]) if pieces[-1] else None
    anys = tuple(_unescape(p) for p in pieces[1:-1] if p)
    return Substrings(attr, initial, anys, final), close + 1
