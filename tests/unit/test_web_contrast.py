"""The stylesheet's text colours are readable: WCAG 2 contrast of at least 4.5:1 on their backgrounds."""

from __future__ import annotations

import re

import pytest

from pbxsync.plugin.web.static_files import static_dir

# (text colour, background) as the stylesheet pairs them
PAIRS = [("text", "background"), ("text", "surface"), ("muted", "background"), ("muted", "surface"),
         ("accent", "background"), ("accent", "surface"), ("accent-text", "accent"), ("error", "background"),
         ("error", "surface"), ("ok", "background"), ("ok", "surface")]


def colours() -> dict[str, str]:
    css = (static_dir() / "style.css").read_text(encoding="utf-8")
    root = re.search(r":root\s*\{(.*?)\}", css, re.S)
    assert root is not None
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;", root.group(1)))


def luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_formula_gives_the_known_extremes() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_colours_contrast_at_least_4_5_to_1(text: str, background: str) -> None:
    palette = colours()
    ratio = contrast(palette[text], palette[background])
    assert ratio >= 4.5, f"--{text} on --{background}: {ratio:.2f}:1"


def test_every_colour_the_stylesheet_uses_is_a_checked_custom_property() -> None:
    css = (static_dir() / "style.css").read_text(encoding="utf-8")
    outside_root = re.sub(r":root\s*\{.*?\}", "", css, flags=re.S)
    assert re.findall(r"#[0-9a-fA-F]{3,6}\b", outside_root) == []
