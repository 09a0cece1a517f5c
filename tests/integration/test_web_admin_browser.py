"""The admin pages in real headless Chromium (screenshots in the test's tmp_path): the outcomes chart
drawn with a bar per seeded outcome and a table that says the same, a non-admin refused, and the
accessibility basics (labels, table headers, the chart's name, keyboard reach)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from pbxsync.plugin.daemon.clock import FakeClock
from tests.support.admin_seed import EXPECTED_TABLE, NOW, seed_admin_data
from tests.support.browser import screenshot, sign_in, wait_for
from tests.support.web_portal import RunningPortal, password_of, portal_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_argon2")]
SERIES = ["answered", "busy", "no_answer", "failed"]
ADMIN_PAGES = ["/admin/users", "/admin/lag", "/admin/health", "/admin/bookings", "/admin/bookings/1",
               "/admin/outcomes", "/admin/config"]


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[RunningPortal]:
    with portal_in_thread(tmp_path, seed_admin_data) as running:
        running.ctx.clock = FakeClock(NOW)  # the seeded outcomes are the last days before NOW
        yield running


def signed_in(browser: WebDriver, portal: RunningPortal, extension: str) -> None:
    sign_in(browser, portal.url, extension, password_of(extension))
    wait_for(browser, ".who")  # the page after signing in: navigating on before it would race the POST


def test_the_admin_sees_the_outcomes_chart_with_a_bar_per_outcome(browser: WebDriver, portal: RunningPortal,
                                                                  tmp_path: Path) -> None:
    signed_in(browser, portal, "101")
    browser.get(f"{portal.url}/admin/outcomes?days=7")
    wait_for(browser, "svg#outcomes-chart")
    screenshot(browser, tmp_path, "admin-outcomes")
    chart = browser.find_element(By.ID, "outcomes-chart")
    assert chart.is_displayed() and chart.size["width"] > 300 and chart.size["height"] > 150
    assert chart.get_attribute("role") == "img"
    bars = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
    drawn: dict[tuple[str, str], int] = {}
    for bar in bars:
        assert float(bar.get_attribute("height") or 0) > 0 and bar.is_displayed()
        drawn[(bar.get_attribute("data-category") or "", bar.get_attribute("data-series") or "")] = int(
            bar.get_attribute("data-value") or 0)
    seeded = {(day, SERIES[i]): n for day, counts in EXPECTED_TABLE.items() for i, n in enumerate(counts) if n}
    assert drawn == seeded
    table = browser.find_element(By.ID, "outcomes-table")
    shown = {r.find_element(By.TAG_NAME, "th").text: tuple(int(c.text) for c in r.find_elements(By.TAG_NAME, "td"))
             for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert {day: shown[day] for day in EXPECTED_TABLE} == EXPECTED_TABLE
    assert all(sum(v) == 0 for day, v in shown.items() if day not in EXPECTED_TABLE)
    # The tallest column (2 Dec: 3 calls, 1 Dec: 4 calls) really is drawn taller
    heights = {day: sum(b.size["height"] for b in bars if b.get_attribute("data-category") == day)
               for day in ("2026-12-01", "2026-12-02")}
    assert heights["2026-12-01"] > heights["2026-12-02"] > 0


def test_a_non_admin_opening_an_admin_page_is_refused(browser: WebDriver, portal: RunningPortal,
                                                      tmp_path: Path) -> None:
    signed_in(browser, portal, "102")
    assert not browser.find_elements(By.CSS_SELECTOR, 'nav a[href="/admin/users"]')
    for path in ("/admin/users", "/admin/outcomes", "/admin/config"):
        browser.get(f"{portal.url}{path}")
        wait_for(browser, "body")
        assert "This page is for administrators." in browser.find_element(By.TAG_NAME, "body").text
        assert not browser.find_elements(By.TAG_NAME, "svg") and not browser.find_elements(By.TAG_NAME, "table")
    screenshot(browser, tmp_path, "admin-refused")


def label_of(browser: WebDriver, field: WebElement) -> str:
    field_id = field.get_attribute("id")
    assert field_id, f"a form field without an id: {field.get_attribute('outerHTML')}"
    labels = browser.find_elements(By.CSS_SELECTOR, f'label[for="{field_id}"]')
    return labels[0].text if labels else (field.get_attribute("aria-label") or "")


def test_admin_pages_have_labels_table_headers_and_named_charts(browser: WebDriver, portal: RunningPortal,
                                                                tmp_path: Path) -> None:
    signed_in(browser, portal, "101")
    for path in ADMIN_PAGES:
        browser.get(f"{portal.url}{path}")
        wait_for(browser, "h1")
        name = path.strip("/").replace("/", "-")
        screenshot(browser, tmp_path, name)
        assert len(browser.find_elements(By.TAG_NAME, "h1")) == 1, path
        assert browser.find_element(By.CSS_SELECTOR, 'nav[aria-label="Admin pages"] a[aria-current="page"]')
        for field in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
            assert label_of(browser, field).strip(), f"{path}: a field without a label"
        for table in browser.find_elements(By.TAG_NAME, "table"):
            headers = table.find_elements(By.CSS_SELECTOR, "thead th[scope=col]")
            assert headers, f"{path}: a table without column headers"
            assert (table.find_elements(By.TAG_NAME, "caption")
                    or table.get_attribute("aria-labelledby") or table.get_attribute("aria-describedby")), path
        for svg in browser.find_elements(By.CSS_SELECTOR, "svg.chart"):
            chart_id = svg.get_attribute("id")
            assert svg.get_attribute("role") == "img"
            assert svg.find_element(By.ID, f"{chart_id}-title").get_attribute("textContent")
            assert svg.find_element(By.ID, f"{chart_id}-desc").get_attribute("textContent")


def test_the_users_filter_and_sort_links_are_reached_and_used_by_keyboard(browser: WebDriver, portal: RunningPortal,
                                                                          tmp_path: Path) -> None:
    signed_in(browser, portal, "101")
    browser.get(f"{portal.url}/admin/users")
    wait_for(browser, "#q")
    reached: list[str] = []
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(40):
        active = browser.switch_to.active_element
        reached.append(active.get_attribute("id") or active.text)
        if active.get_attribute("id") == "q":
            break
        active.send_keys(Keys.TAB)
    assert reached[0] == "Skip to content" and reached[-1] == "q"
    assert "Sync lag" in reached and "Configuration" in reached  # the admin navigation on the way
    browser.switch_to.active_element.send_keys("bob", Keys.ENTER)  # the filter form submits with Enter
    wait_for(browser, "#users-count")
    assert "q=bob" in browser.current_url
    rows = browser.find_elements(By.CSS_SELECTOR, "table.users tbody tr")
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == ["102"]
    screenshot(browser, tmp_path, "users-filtered")
