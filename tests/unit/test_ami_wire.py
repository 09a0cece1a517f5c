from __future__ import annotations

import pytest

from pbxsync.plugin.ami.wire import (
    AmiDecoder,
    AmiMessage,
    callerid,
    encode_action,
    render_dial,
    sanitize_callerid_name,
    variable_headers,
)
from pbxsync.sync.errors import ValidationError

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def test_banner_without_blank_line_then_messages() -> None:
    d = AmiDecoder()
    msgs = d.feed(BANNER + b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n")
    assert d.banner == "Asterisk Call Manager/11.0.0"
    assert msgs == [AmiMessage.of(("Response", "Success"), ("ActionID", "a1"),
                                  ("Message", "Authentication accepted"))]


def test_utf8_split_across_reads_is_kept() -> None:
    raw = "Event: VoicemailUserEntry\r\nFullname: Jürgen Müßig 日本\r\n\r\n".encode()
    d = AmiDecoder(expect_banner=False)
    out: list[AmiMessage] = []
    for i in range(len(raw)):  # one byte per read: every multibyte sequence is split
        out += d.feed(raw[i:i + 1])
    assert [m.get("Fullname") for m in out] == ["Jürgen Müßig 日本"]


def test_first_header_decides_response_or_event() -> None:
    (event,) = AmiDecoder(expect_banner=False).feed(
        b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: x\r\nResponse: Failure\r\nReason: 5\r\n\r\n")
    assert event.is_event and not event.is_response and event.name == "OriginateResponse"
    assert event.get("response") == "Failure"


def test_repeated_headers_and_empty_values_keep_order() -> None:
    (msg,) = AmiDecoder(expect_banner=False).feed(
        b"Response: Success\r\nMessage: Command output follows\r\nOutput: a\r\nOutput: \r\nOutput: b\r\n\r\n")
    assert msg.get_all("Output") == ["a", "", "b"]
    assert msg.keys() == ["Response", "Message", "Output", "Output", "Output"]


def test_garbage_is_skipped_and_counted() -> None:
    d = AmiDecoder()
    msgs = d.feed(BANNER + b"\x00\xff\xfe garbage line\r\n%%%\r\nResponse: Success\r\nPing: Pong\r\n\r\n")
    assert [m.get("Ping") for m in msgs] == ["Pong"]
    assert d.garbage_lines == 2


def test_unbounded_line_is_dropped() -> None:
    d = AmiDecoder(expect_banner=False)
    assert d.feed(b"A" * 1_100_000) == []
    assert d.garbage_lines == 1
    assert d.feed(b"\r\nResponse: Success\r\n\r\n")[0].name == "Success"


def test_encode_keeps_order_and_crlf() -> None:
    assert encode_action("Ping", [("ActionID", "p1")]) == b"Action: Ping\r\nActionID: p1\r\n\r\n"


@pytest.mark.parametrize("value", ["a\r\nAction: Originate", "a\nb", "a\rb", "a\x00b", "x" * 100_000])
def test_encode_refuses_smuggling_and_huge_values(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        encode_action("Originate", [("CallerID", value)])
    assert "CallerID" in str(info.value)
    assert value[:20] not in str(info.value) or value.startswith("x")


@pytest.mark.parametrize("bad", ["101&PJSIP/666", "101,tT", "${EXTEN}", "10 1", "10\"1", "101)", "_1XX",
                                 "", "1" * 40, "10\r\n1", "10'1", "10;1"])
def test_dial_strings_are_an_allow_list(bad: str) -> None:
    with pytest.raises(ValidationError):
        render_dial("PJSIP/{extension}", bad)


def test_dial_templates() -> None:
    assert render_dial("PJSIP/{extension}", "101") == "PJSIP/101"
    assert render_dial("Local/{extension}@from-internal", "101") == "Local/101@from-internal"
    with pytest.raises(ValidationError):
        render_dial("PJSIP/{extension}&PJSIP/999", "101")
    with pytest.raises(ValidationError):
        render_dial("PJSIP/101", "101")


def test_variables_one_header_each_and_commas_refused() -> None:
    assert variable_headers({"PBXSYNC_ROOM": "8001", "PBXSYNC_ROLE": "host"}) == [
        ("Variable", "PBXSYNC_ROOM=8001"), ("Variable", "PBXSYNC_ROLE=host")]
    for value in ["8001,PBXSYNC_ROLE=host", "${SHELL(id)}", "a\nb"]:
        with pytest.raises(ValidationError):
            variable_headers({"PBXSYNC_ROOM": value})
    with pytest.raises(ValidationError):
        variable_headers({"BAD NAME": "x"})


def test_callerid_name_is_sanitised() -> None:
    assert sanitize_callerid_name('Board "meeting" <evil>, ${X}; & more\r\nAction: Originate') == \
        "Board meeting evil X more Action: Origin"
    assert sanitize_callerid_name("\x00\x01") == "Meeting"
    assert len(sanitize_callerid_name("Ä" * 100_000)) == 40
    assert callerid("Weekly sync", "8001") == "Weekly sync <8001>"
    with pytest.raises(ValidationError):
        callerid("x", "80<01")
