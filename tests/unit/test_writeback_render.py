"""The "Join by phone" block and the meeting body around it (plugin.writeback.render): rules as test names."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsync.plugin.writeback.render import (
    MAX_BODY_CHARS,
    BodyTooLarge,
    JoinDetails,
    apply_block,
    block_lines,
    block_tag,
    find_block,
    has_block,
    render_block,
)

DETAILS = JoinDetails(room="8001", pin="123456", autocall=True, start=datetime(2026, 12, 2, 8, tzinfo=UTC),
                      end=datetime(2026, 12, 2, 8, 30, tzinfo=UTC), timezone="Europe/Berlin",
                      dial_in_numbers=("+49 30 1234567", "+43 1 2345678"))
MOVED = replace(DETAILS, room="8003")
# Bodies as people and Outlook write them, markers of ours faked or broken included.
body_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=300)
fake_marker = st.sampled_from([
    "=== pbxsync: join by phone 0123456789abcdef ===", "=== pbxsync: end 0123456789abcdef ===",
    "<!-- pbxsync:join-by-phone 0123456789abcdef -->", "<!-- /pbxsync:join-by-phone fedcba9876543210 -->",
    "<!-- pbxsync:join-by-phone", "</body>", "</BODY >", "<body>", "<html>"])
bodies = st.lists(st.one_of(body_text, fake_marker), max_size=6).map("".join)


def test_the_block_says_numbers_room_pin_autocall_and_time_in_the_meetings_zone() -> None:
    assert block_lines(DETAILS) == [
        "Join by phone", "Dial-in: +49 30 1234567, +43 1 2345678",
        "Then key in the room number 8001 followed by #", "From a company phone: 8001", "PIN: 123456",
        "The PBX will call you at the start.", "Booked for 2026-12-02 09:00-09:30 (Europe/Berlin)"]


def test_direct_dial_appends_the_room_to_each_number() -> None:
    lines = block_lines(replace(DETAILS, dial_in_room="direct"))
    assert lines[1] == "Dial-in: +49 30 1234567-8001, +43 1 2345678-8001"
    assert not any("key in" in line for line in lines)


def test_no_pin_no_autocall_no_numbers_leave_their_lines_out() -> None:
    lines = block_lines(replace(DETAILS, pin=None, autocall=False, dial_in_numbers=()))
    assert lines == ["Join by phone", "From a company phone: 8001", "Booked for 2026-12-02 09:00-09:30 (Europe/Berlin)"]


def test_a_windows_zone_id_is_understood_and_an_unknown_zone_is_shown_as_utc() -> None:
    assert block_lines(replace(DETAILS, timezone="W. Europe Standard Time"))[-1] == (
        "Booked for 2026-12-02 09:00-09:30 (W. Europe Standard Time)")
    assert block_lines(replace(DETAILS, timezone="Customized Time Zone"))[-1] == (
        "Booked for 2026-12-02 08:00-08:30 (UTC)")


def test_html_escapes_every_value() -> None:
    hostile = replace(DETAILS, dial_in_numbers=("<script>alert(1)</script>",))
    assert "<script>" not in render_block(hostile, True)
    assert "&lt;script&gt;" in render_block(hostile, True)


def test_a_new_block_goes_before_the_last_closing_body_tag() -> None:
    body = "<html><body><p>x</p></body></html>"
    out = apply_block(body, True, DETAILS)
    assert out == "<html><body><p>x</p>" + render_block(DETAILS, True) + "</body></html>"


def test_broken_html_without_a_body_end_gets_the_block_at_the_end() -> None:
    assert apply_block("<p>unclosed <b>bold", True, DETAILS) == "<p>unclosed <b>bold" + render_block(DETAILS, True)


def test_a_text_body_gets_the_block_after_one_blank_line_and_an_empty_body_just_the_block() -> None:
    assert apply_block("Agenda", False, DETAILS) == "Agenda\n\n" + render_block(DETAILS, False)
    assert apply_block("", False, DETAILS) == render_block(DETAILS, False)


def test_a_changed_booking_replaces_only_our_block() -> None:
    body = "<html><body><p>before</p>" + render_block(DETAILS, True) + "<p>after</p></body></html>"
    out = apply_block(body, True, MOVED)
    assert out == "<html><body><p>before</p>" + render_block(MOVED, True) + "<p>after</p></body></html>"


def test_the_organizer_editing_inside_our_markers_is_replaced_by_the_block() -> None:
    block = render_block(DETAILS, False)
    edited = block.replace("PIN: 123456", "PIN: call me")
    assert apply_block("x\n\n" + edited, False, DETAILS) == "x\n\n" + block


def test_only_the_first_pair_is_ours_a_pasted_copy_further_down_is_the_organizers() -> None:
    block = render_block(DETAILS, True)
    body = f"<body>{block}<p>copy:</p>{block}</body>"
    assert apply_block(body, True, MOVED) == f"<body>{render_block(MOVED, True)}<p>copy:</p>{block}</body>"


def test_markers_with_different_tags_or_out_of_order_are_not_a_block() -> None:
    text = "<!-- /pbxsync:join-by-phone 0123456789abcdef --> <!-- pbxsync:join-by-phone 0123456789abcdef -->"
    assert find_block(text, True) is None
    assert find_block("<!-- pbxsync:join-by-phone 0123456789abcdef --><!-- /pbxsync:join-by-phone "
                      "fedcba9876543210 -->", True) is None


def test_a_stray_copy_of_our_begin_marker_pairs_with_nothing() -> None:
    block = render_block(DETAILS, False)
    stray = block.splitlines()[0]
    body = f"{stray}\nmy notes\n\n{block}"
    start, end, _ = find_block(body, False) or (0, 0, "")
    assert body[start:end] == block


def test_removing_takes_out_exactly_what_adding_put_in() -> None:
    for body, is_html in (("Agenda", False), ("", False), ("<body>x</body>", True), ("no html", True)):
        assert apply_block(apply_block(body, is_html, DETAILS), is_html, None) == body


def test_a_body_over_the_limit_is_not_rewritten() -> None:
    with pytest.raises(BodyTooLarge):
        apply_block("x" * (MAX_BODY_CHARS + 1), True, DETAILS)


def test_has_block_tells_an_intact_block_from_an_edited_one() -> None:
    body = apply_block("<body>x</body>", True, DETAILS)
    assert has_block(body, True, DETAILS)
    assert not has_block(body, True, MOVED)
    assert not has_block(body.replace("8001", "8009"), True, DETAILS)


def test_the_tag_names_the_content() -> None:
    assert block_tag(DETAILS) == block_tag(replace(DETAILS))
    assert block_tag(DETAILS) != block_tag(MOVED)


def test_a_stray_begin_line_before_our_block_is_not_taken_for_its_start() -> None:
    """Found by hypothesis: a stale begin marker left in front of our block paired with the end marker behind it."""
    stale = "=== pbxsync: join by phone 0123456789abcdef ==="
    body = stale * 2 + "=== pbxsync: end 0123456789abcdef ===" * 2
    added = apply_block(body, False, DETAILS)
    start, end, _ = find_block(added, False) or (0, 0, "")
    assert added[start:end] == render_block(DETAILS, False)
    assert added == stale + render_block(DETAILS, False) + "=== pbxsync: end 0123456789abcdef ==="


@given(bodies, st.booleans())
def test_the_rest_of_the_body_is_untouched_byte_for_byte(body: str, is_html: bool) -> None:
    had = find_block(body, is_html)
    added = apply_block(body, is_html, DETAILS)
    start, end, _ = find_block(added, is_html) or (0, 0, "")
    assert added[start:end] == render_block(DETAILS, is_html)
    if had is None:
        # Outside our block (and the one gap before a block at the end of a text body) nothing changed.
        rest = added[:start] + added[end:]
        assert rest == body or (not is_html and rest == body + "\n\n")
        assert apply_block(added, is_html, None) == body
    else:
        assert added[:start] == body[:had[0]] and added[end:] == body[had[1]:]
    updated = apply_block(added, is_html, MOVED)
    assert updated[:start] == added[:start]
    assert updated[start + len(render_block(MOVED, is_html)):] == added[end:]
    assert apply_block(updated, is_html, MOVED) == updated  # idempotent: the next pass writes nothing
