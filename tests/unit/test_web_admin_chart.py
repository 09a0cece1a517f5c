"""The admin charts' geometry and colours, and the rules of the users table (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pbxsync.plugin.web.admin_outcomes import SERIES, day_span, outcome_counts, parse_days
from pbxsync.plugin.web.admin_users import LAG_COLOUR, UserRow, select_rows, short_duration
from pbxsync.plugin.web.chart import Chart, horizontal_bars, nice_ticks, stacked_columns
from pbxsync.plugin.web.render import svg_chart
from tests.unit.test_web_contrast import contrast

WHITE = "#ffffff"


@pytest.mark.parametrize(("top", "ticks"), [(0, [0, 1]), (1, [0, 1]), (3, [0, 1, 2, 3]), (7, [0, 2, 4, 6, 8]),
                                            (10, [0, 2.5, 5, 7.5, 10]), (95, [0, 25, 50, 75, 100])])
def test_ticks_are_round_and_reach_the_top(top: float, ticks: list[float]) -> None:
    assert nice_ticks(top) == ticks


def test_stacked_columns_heights_are_proportional_and_stack_from_the_axis() -> None:
    days = ["2026-12-01", "2026-12-02"]
    chart = stacked_columns(days, SERIES, {("2026-12-01", "answered"): 3, ("2026-12-01", "busy"): 1,
                                           ("2026-12-02", "failed"): 2})
    bars = {(b.category, b.series): b for b in chart.bars}
    assert set(bars) == {("2026-12-01", "answered"), ("2026-12-01", "busy"), ("2026-12-02", "failed")}
    answered, busy = bars[("2026-12-01", "answered")], bars[("2026-12-01", "busy")]
    failed = bars[("2026-12-02", "failed")]
    assert answered.height == pytest.approx(3 * busy.height) and failed.height == pytest.approx(2 * busy.height)
    assert busy.y + busy.height == pytest.approx(answered.y)  # busy sits on answered
    assert answered.y + answered.height == pytest.approx(failed.y + failed.height)  # both stand on the axis
    assert answered.title == "2026-12-01: 3 answered"


def test_a_chart_with_no_calls_has_no_bars_but_an_axis() -> None:
    chart = stacked_columns(day_span(datetime(2026, 12, 3, tzinfo=UTC), 14), SERIES, {})
    assert chart.bars == () and len(chart.axes) == 2 and chart.labels


def test_horizontal_bars_scale_to_the_longest() -> None:
    chart = horizontal_bars([("101 Ada", 10, "10 min"), ("102 Bob", 5, "5 min")], LAG_COLOUR)
    assert chart.bars[0].width == pytest.approx(2 * chart.bars[1].width)


@pytest.mark.parametrize("colour", [s.colour for s in SERIES] + [LAG_COLOUR])
def test_chart_colours_contrast_at_least_3_to_1_with_the_page(colour: str) -> None:
    assert contrast(colour, WHITE) >= 3.0  # WCAG 2.1 1.4.11, graphical objects


def test_outcomes_group_into_four_results_and_drop_what_is_no_result() -> None:
    rows = [("d", "answered", 2), ("d", "congestion", 1), ("d", "unknown", 1), ("d", "failed", 1),
            ("d", "pending", 5), ("d", "cancelled", 3), ("d", "no_answer", 1), ("d", "not_sent", 1)]
    assert outcome_counts(rows) == {("d", "answered"): 2, ("d", "failed"): 4, ("d", "no_answer"): 1}


def test_days_parameter_is_clamped_and_defaults() -> None:
    assert [parse_days({"days": v}) for v in ("7", "0", "500", "x", "")] == [7, 1, 90, 14, 14]
    assert day_span(datetime(2026, 12, 3, 23, 59, tzinfo=UTC), 3) == ["2026-12-01", "2026-12-02", "2026-12-03"]


def row(ext: str, name: str, status: str, lag_minutes: int | None) -> UserRow:
    return UserRow(ext, name, f"{name.lower()}@example.com", "", "ok", (), (), status,
                   None if lag_minutes is None else timedelta(minutes=lag_minutes))


ROWS = [row("101", "Ada", "ok", 5), row("1000", "Zed", "off", None), row("102", "Bob", "error", 120),
        row("103", "Eve", "never", None), row("20", "Al", "ok", 1)]


def test_sorting_by_extension_is_numeric_and_by_lag_puts_never_synced_worst() -> None:
    assert [r.extension for r in select_rows(ROWS, {})[0]] == ["20", "101", "102", "103", "1000"]
    assert [r.extension for r in select_rows(ROWS, {"sort": "lag"})[0]] == ["103", "102", "101", "20", "1000"]
    assert [r.extension for r in select_rows(ROWS, {"sort": "status", "order": "desc"})[0]][:2] == ["102", "103"]


def test_filters_combine_and_bad_values_fall_back() -> None:
    rows, chosen = select_rows(ROWS, {"q": " a ", "status": "ok", "sort": "evil", "order": "sideways"})
    assert [r.extension for r in rows] == ["20", "101"]
    assert chosen == {"q": "a", "status": "ok", "sort": "extension", "order": "asc"}


@pytest.mark.parametrize(("seconds", "text"), [(None, "–"), (59, "59 s"), (600, "10 min"), (7200, "2 h"),
                                               (7260, "2 h 1 min"), (3 * 86400 + 3600, "3 d 1 h")])
def test_durations_read_like_a_person_would_say_them(seconds: int | None, text: str) -> None:
    assert short_duration(None if seconds is None else timedelta(seconds=seconds)) == text


def test_within_one_second_a_call_reads_before_its_outcome_and_a_retry_after_it() -> None:
    from pbxsync.plugin.booking.store import BookingEvent
    from pbxsync.plugin.web.admin_bookings import Attempt, audit_trail

    second = datetime(2026, 12, 3, 17, 10, 37, tzinfo=UTC)
    attempts = [Attempt("101", 1, "answered", "4", None, second, second, second),
                Attempt("103", 1, "busy", "5", "Failure", second, second, None),
                Attempt("103", 2, "busy", "5", None, second, second + timedelta(seconds=3), None)]
    trail = audit_trail([BookingEvent(1, "2026-12-03T17:10:37+00:00", "create", "booked in room 8001")], attempts)
    assert [(e.what, e.detail) for e in trail] == [
        ("booked", "booked in room 8001"), ("called", "101, attempt 1"), ("called", "103, attempt 1"),
        ("answered", "101, attempt 1"), ("busy", "103, attempt 1 (Failure)"), ("joined the room", "101, attempt 1"),
        ("called", "103, attempt 2"), ("busy", "103, attempt 2")]


def test_a_chart_is_drawn_once_and_the_same_numbers_draw_the_same_svg() -> None:
    days = ["2026-12-01", "2026-12-02"]

    def chart(answered: int) -> Chart:
        return stacked_columns(days, SERIES, {("2026-12-01", "answered"): answered, ("2026-12-02", "busy"): 1})

    first = svg_chart(chart(3), "c", "Outcomes <&>", "desc")
    assert svg_chart(chart(3), "c", "Outcomes <&>", "desc") is first  # equal charts: drawn once
    assert "Outcomes &lt;&amp;&gt;" in first and first.count("<rect") == 2
    assert svg_chart(chart(4), "c", "Outcomes <&>", "desc") != first  # other numbers: drawn anew
