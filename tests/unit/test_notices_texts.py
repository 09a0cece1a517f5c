"""The notice texts (plugin/notices/texts.py): shipped en/de templates, overrides, hostile values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.notices.texts import (
    MAX_SUBJECT,
    NoticeFacts,
    NoticeTemplateError,
    NoticeTemplates,
    format_when,
)
from pbxsync.sync.sources.mail import OutgoingMail

START = datetime(2026, 12, 4, 8, tzinfo=UTC)


def facts(subject: str = "Weekly sync", reason: str = "room conflict: ...", timezone: str = "Europe/Berlin",
          name: str = "Alice Example") -> NoticeFacts:
    return NoticeFacts(name=name, subject=subject, start=START, end=START + timedelta(hours=1), timezone=timezone,
                       reason=reason)


def test_english_rejection_says_why_and_what_to_do() -> None:
    text = NoticeTemplates("en").render("rejected:no_room", facts())
    assert text.subject == 'No PBX conference for "Weekly sync"'
    assert "Hello Alice Example," in text.body
    assert "2026-12-04 09:00-10:00 (Europe/Berlin)" in text.body
    assert "No conference room is free at that time." in text.body
    assert "Move the meeting to another time" in text.body
    assert "room conflict" not in text.body  # the admin's text (naming another booking) stays out


def test_german_cancellation() -> None:
    text = NoticeTemplates("de").render("cancelled:all_day", facts())
    assert text.subject == "Telefonkonferenz abgesagt für „Weekly sync“"
    assert "ganztägiges Ereignis" in text.body
    assert "Hallo Alice Example," in text.body


def test_every_shipped_language_has_every_kind_and_reason() -> None:
    for language in ("en", "de"):
        templates = NoticeTemplates(language)
        for kind in ("rejected", "cancelled"):
            for code in ("all_day", "ends_before_start", "no_duration", "no_room", "other"):
                text = templates.render(f"{kind}:{code}", facts())
                assert "${" not in text.subject + text.body


def test_other_reasons_tell_the_pbx_text_in_one_line() -> None:
    text = NoticeTemplates("en").render("rejected:other", facts(reason="a new\nreason\r\nX-Evil: 1"))
    assert "a new reason X-Evil: 1" in text.body


def test_a_subject_with_line_breaks_cannot_make_headers() -> None:
    text = NoticeTemplates("en").render("rejected:no_room", facts(subject="Hi\r\nBcc: victim@example.com\u2028x"))
    assert "\r" not in text.subject and "\n" not in text.subject and "\u2028" not in text.subject
    assert text.subject == 'No PBX conference for "Hi Bcc: victim@example.com x"'
    OutgoingMail("alice@example.com", "alice@example.com", text.subject, text.body)  # accepted as one line


def test_a_ten_megabyte_subject_is_cut_short() -> None:
    text = NoticeTemplates("en").render("rejected:no_room", facts(subject="A" * 10_000_000))
    assert len(text.subject) <= MAX_SUBJECT
    assert len(text.body) < 2000
    assert text.subject.endswith('…"')


def test_placeholders_in_values_stay_text() -> None:
    text = NoticeTemplates("en").render("rejected:no_room", facts(subject="${why} $name", name="${fix}"))
    assert '"${why} $name"' in text.subject
    assert "Hello ${fix}," in text.body


def test_a_windows_zone_name_is_shown_as_its_iana_zone() -> None:
    assert format_when(START, START + timedelta(hours=1), "W. Europe Standard Time") == \
        "2026-12-04 09:00-10:00 (Europe/Berlin)"


def test_an_unknown_zone_is_shown_in_utc() -> None:
    for hostile in ("Mars/Olympus", "\x00", "/etc/passwd", "x" * 100, ""):
        assert format_when(START, START + timedelta(hours=1), hostile) == "2026-12-04 08:00-09:00 (UTC)"
    assert format_when(START, START + timedelta(days=1), "../../etc/passwd") == \
        "2026-12-04 08:00-2026-12-05 08:00 (UTC)"


def test_a_template_directory_overrides_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "rejected.en.txt").write_text("Subject: PBX: ${subject}\n\nSorry ${name}: ${why}\n",
                                              encoding="utf-8")
    templates = NoticeTemplates("en", str(tmp_path))
    text = templates.render("rejected:no_room", facts())
    assert (text.subject, text.body) == ("PBX: Weekly sync", "Sorry Alice Example: No conference room is free "
                                                             "at that time.\n")
    assert templates.render("cancelled:no_room", facts()).subject.startswith("PBX conference cancelled")


def test_a_missing_language_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoticeTemplateError, match=r"rejected\.fr\.txt"):
        NoticeTemplates("fr", str(tmp_path))


def test_a_template_without_subject_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rejected.en.txt").write_text("Hello\n\nbody\n", encoding="utf-8")
    with pytest.raises(NoticeTemplateError, match="Subject"):
        NoticeTemplates("en", str(tmp_path))


def test_outgoing_mail_refuses_header_breaking_values() -> None:
    for bad in ({"subject": "a\r\nb"}, {"to": "x@y\nBcc: z@w"}, {"sender": "nobody"}):
        values = {"sender": "a@b.c", "to": "a@b.c", "subject": "s", "body": "b", **bad}
        with pytest.raises(ValueError):
            OutgoingMail(**values)
