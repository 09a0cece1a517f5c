"""Bar charts drawn on the server as plain geometry, which a template writes out as inline SVG.

No chart library and no script: the page works without JavaScript and under the strict CSP (the SVG
uses presentation attributes, not `style`). The numbers behind a chart are also shown as a table beside
it, so the chart is a picture of the table, never the only place a value is.

Pure: counts in, rectangles and labels out (`stacked_columns` for counts per day in series,
`horizontal_bars` for one value per row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Series:
    key: str  # a stable name for tests and CSS ("answered")
    label: str  # what a person reads ("no answer")
    colour: str  # at least 3:1 against the white background (WCAG 1.4.11, graphics)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    series: str  # Series.key, or "" for a single-series chart
    category: str  # the day or the row it belongs to
    value: float
    title: str  # the tooltip and the accessible name of this bar


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]  # axis labels and tick values
    grid: tuple[Line, ...]  # horizontal or vertical guides at the ticks
    axes: tuple[Line, ...]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 and a few round steps (1, 2, 2.5, 5 × 10^n) up to at least `top`; integers when counting."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if step < 1 and float(top).is_integer():
        step = 1.0
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def stacked_columns(categories: Sequence[str], series: Sequence[Series], counts: dict[tuple[str, str], int],
                    *, width: int = 760, height: int = 320, category_label: str = "") -> Chart:
    """One column per category (a day), stacked by series in order; counts[(category, series key)]."""
    left, right, top, bottom = 48.0, 12.0, 12.0, 56.0
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(counts.get((c, s.key), 0) for s in series) for c in categories]
    ticks = nice_ticks(max(totals, default=0))
    scale = plot_h / ticks[-1]
    band = plot_w / max(len(categories), 1)
    bar_w = max(min(band * 0.64, 48.0), 2.0)
    bars: list[Bar] = []
    labels: list[Label] = []
    every = max(1, math.ceil(len(categories) / 14))  # at most ~14 category labels under the axis
    for i, category in enumerate(categories):
        x = left + band * i + (band - bar_w) / 2
        base = top + plot_h
        for s in series:
            value = counts.get((category, s.key), 0)
            if value <= 0:
                continue
            h = value * scale
            base -= h
            bars.append(Bar(round(x, 2), round(base, 2), round(bar_w, 2), round(h, 2), s.colour, s.key, category,
                            value, f"{category}: {value} {s.label}"))
        if i % every == 0:
            labels.append(Label(round(left + band * i + band / 2, 2), top + plot_h + 18, category[5:]))
    grid = []
    for tick in ticks:
        y = round(top + plot_h - tick * scale, 2)
        grid.append(Line(left, y, width - right, y))
        labels.append(Label(left - 6, y + 4, _number(tick), "end"))
    if category_label:
        labels.append(Label(left + plot_w / 2, height - 8, category_label))
    axes = (Line(left, top, left, top + plot_h), Line(left, top + plot_h, width - right, top + plot_h))
    return Chart(width, height, tuple(bars), tuple(labels), tuple(grid), axes)


def horizontal_bars(rows: Sequence[tuple[str, float, str]], colour: str, *, unit: str = "",
                    width: int = 760, row_height: int = 26) -> Chart:
    """One bar per row: (label, value, shown value). Values below 0 draw as 0."""
    left, right, top, bottom = 200.0, 90.0, 8.0, 28.0
    height = int(top + bottom + row_height * max(len(rows), 1))
    plot_w = width - left - right
    ticks = nice_ticks(max((v for _, v, _ in rows), default=0))
    scale = plot_w / ticks[-1]
    bars: list[Bar] = []
    labels: list[Label] = []
    for i, (label, value, shown) in enumerate(rows):
        y = top + row_height * i
        w = max(value, 0) * scale
        bars.append(Bar(left, round(y + 4, 2), round(w, 2), row_height - 8, colour, "", label, value,
                        f"{label}: {shown}"))
        labels.append(Label(left - 8, y + row_height / 2 + 5, label, "end"))
        labels.append(Label(round(left + w + 6, 2), y + row_height / 2 + 5, shown, "start"))
    plot_bottom = top + row_height * max(len(rows), 1)
    grid = []
    for tick in ticks:
        x = round(left + tick * scale, 2)
        grid.append(Line(x, top, x, plot_bottom))
        labels.append(Label(x, plot_bottom + 18, _number(tick) + unit))
    axes = (Line(left, top, left, plot_bottom),)
    return Chart(width, height, tuple(bars), tuple(labels), tuple(grid), axes)
