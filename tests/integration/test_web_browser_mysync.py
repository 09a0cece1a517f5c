"""*My sync* and the portal's defences in real headless Chromium (screenshots in the test's tmp_path):
hostile Exchange values shown as text, another user's page refused, a cross-site POST refused, Sync now
with live progress, and accessibility basics (labels, keyboard order)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.sync.model import Folder
from pbxsync.sync.store.db import Store
from pbxsync.sync.store.folders import record_success
from tests.support.browser import WAIT_SECONDS, screenshot, sign_in, until_replaced, wait_for
from tests.support.web_portal import XSS, RunningPortal, fill_sync_state, password_of, portal_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_argon2")]


async def fill(store: Store) -> None:
    await fill_sync_state(store, FakeClock())


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[RunningPortal]:
    with portal_in_thread(tmp_path, fill, user_settings=["sync_contacts", "sync_calendar"]) as running:
        yield running


def no_alert(browser: WebDriver) -> bool:
    try:
        browser.switch_to.alert  # noqa: B018
    except NoAlertPresentException:
        return True
    return False


def test_hostile_values_from_exchange_are_shown_as_text(browser: WebDriver, portal: RunningPortal,
                                                        tmp_path: Path) -> None:
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "#folder-calendar .folder-error")
    error = browser.find_element(By.CSS_SELECTOR, "#folder-calendar .folder-error").text
    assert XSS in error
    skipped = browser.find_element(By.CSS_SELECTOR, "#folder-contacts table.skipped").text
    assert f"not a contact: {XSS}" in skipped and f"Kontakte/{XSS}" in skipped
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
    assert no_alert(browser)
    screenshot(browser, tmp_path, "my-sync-hostile-values")


def test_another_users_page_is_refused(browser: WebDriver, portal: RunningPortal, tmp_path: Path) -> None:
    sign_in(browser, portal.url, "103", password_of("103"))
    wait_for(browser, "h1")
    browser.get(f"{portal.url}/users/102/sync")
    wait_for(browser, "h1")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Forbidden"
    assert "This page belongs to another user." in browser.find_element(By.TAG_NAME, "main").text
    assert "bob@example.com" not in browser.page_source
    screenshot(browser, tmp_path, "another-users-page")


def test_a_post_from_another_site_is_refused(browser: WebDriver, portal: RunningPortal, tmp_path: Path) -> None:
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "#sync-now-button")
    attacker = (f'<form method="post" action="{portal.url}/users/102/sync"><input name="csrf" value="guess">'
                '<button id="go">Win a prize</button></form>')
    browser.get("data:text/html," + quote(attacker))
    browser.find_element(By.ID, "go").click()
    wait_for(browser, "main")
    assert "Refused" in browser.find_element(By.TAG_NAME, "main").text
    screenshot(browser, tmp_path, "cross-site-post")
    assert portal.ctx.sync_jobs.latest("102") is None  # nothing ran


def test_a_script_post_without_the_token_is_refused(browser: WebDriver, portal: RunningPortal) -> None:
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "#sync-now-button")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/users/102/sync', {method: 'POST', credentials: 'same-origin'}).then(r => done(r.status));")
    assert status == 403
    assert portal.ctx.sync_jobs.latest("102") is None


def test_every_input_has_a_label(browser: WebDriver, portal: RunningPortal) -> None:
    pages = ["/signin"]
    browser.delete_all_cookies()
    for path in pages:
        browser.get(portal.url + path)
        assert_labelled(browser, path)
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "#settings-button")
    for path in ("/users/102/sync", "/my/password"):
        browser.get(portal.url + path)
        assert_labelled(browser, path)


def assert_labelled(browser: WebDriver, path: str) -> None:
    unlabelled = browser.execute_script("""
        return [...document.querySelectorAll('input, select, textarea, progress')]
          .filter(e => e.type !== 'hidden' && !e.hidden)
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map(e => e.outerHTML);""")
    assert unlabelled == [], f"{path}: {unlabelled}"
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"


def test_the_keyboard_reaches_the_sign_in_button_in_order(browser: WebDriver, portal: RunningPortal,
                                                          tmp_path: Path) -> None:
    browser.delete_all_cookies()
    browser.get(f"{portal.url}/signin")
    wait_for(browser, "#signin-button")
    browser.find_element(By.TAG_NAME, "h1").click()  # where keyboard navigation starts from
    order = []
    for _ in range(3):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        order.append(browser.switch_to.active_element.get_attribute("id"))
    assert order == ["extension", "password", "signin-button"]
    browser.find_element(By.ID, "extension").click()
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    assert browser.switch_to.active_element.get_attribute("class") == "skip-link"  # the first stop of the page
    screenshot(browser, tmp_path, "keyboard-focus")


def test_sync_now_shows_live_progress_then_the_result(browser: WebDriver, tmp_path: Path) -> None:
    release: dict[str, asyncio.Event] = {}

    async def staged_pass(extension: str) -> None:
        """Like the engine: contacts first (recorded as done), then the calendar once the test lets it."""
        store = running.ctx.store
        now = running.ctx.clock.now()
        async with store.transaction() as conn:
            await record_success(conn, "bob@example.com", Folder.CONTACTS, now, "s2")
        release["calendar"] = asyncio.Event()
        await release["calendar"].wait()
        async with store.transaction() as conn:
            await record_success(conn, "bob@example.com", Folder.CALENDAR, now, "c2")

    with portal_in_thread(tmp_path, fill, sync_now=staged_pass) as running:
        sign_in(browser, running.url, "102", password_of("102"))
        wait_for(browser, "#sync-now-button")
        running.call(lambda: _advance(running.ctx.clock, 60))  # the pass runs after the stored failure
        browser.find_element(By.ID, "sync-now-button").click()
        wait = WebDriverWait(browser, WAIT_SECONDS)
        try:
            wait.until(lambda d: "Contacts: done, Calendar: waiting" in d.find_element(By.ID, "sync-status").text)
        finally:
            screenshot(browser, tmp_path, "sync-now-progress")
        bar = browser.find_element(By.ID, "sync-bar")
        assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("1", "2")
        assert not browser.find_element(By.ID, "sync-now-button").is_enabled()
        running.call(lambda: _set(release["calendar"]))
        wait.until(lambda d: "finished" in d.find_element(By.ID, "sync-status").text)  # the page reloaded
        assert browser.find_elements(By.CSS_SELECTOR, "#folder-calendar .folder-error") == []
        screenshot(browser, tmp_path, "sync-now-done")


async def _set(event: asyncio.Event) -> None:
    event.set()


async def _advance(clock: object, seconds: float) -> None:
    assert isinstance(clock, FakeClock)
    clock.advance(seconds)


def test_a_user_switches_their_calendar_off(browser: WebDriver, portal: RunningPortal, tmp_path: Path) -> None:
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "#sync_calendar")
    assert browser.find_element(By.ID, "sync_calendar").is_selected()
    browser.find_element(By.CSS_SELECTOR, "label[for=sync_calendar]").click()  # the label toggles it too
    save = browser.find_element(By.ID, "settings-button")
    save.click()
    until_replaced(browser, save)  # the answer replaced the page
    wait_for(browser, "#settings .ok")
    assert not browser.find_element(By.ID, "sync_calendar").is_selected()
    assert "Not synced (switched off)." in browser.find_element(By.ID, "folder-calendar").text
    screenshot(browser, tmp_path, "my-sync-settings")
