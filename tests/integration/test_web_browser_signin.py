"""The portal's sign-in in real headless Chromium (screenshots in the test's tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from pbxsync.plugin.web import accounts
from tests.support.browser import screenshot, sign_in, wait_for
from tests.support.web_portal import RunningPortal, password_of

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_argon2")]


@pytest.fixture
def portal(web_portal: RunningPortal) -> RunningPortal:
    return web_portal


def test_an_employee_signs_in_and_lands_on_my_sync(browser: WebDriver, portal: RunningPortal,
                                                   tmp_path: Path) -> None:
    browser.delete_all_cookies()
    browser.get(f"{portal.url}/")
    wait_for(browser, "#extension")
    screenshot(browser, tmp_path, "signin")
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    assert browser.find_element(By.TAG_NAME, "h1").text == "My sync"
    assert "Bob Builder" in browser.find_element(By.CSS_SELECTOR, ".who").text
    screenshot(browser, tmp_path, "my-sync")
    assert (tmp_path / "my-sync.png").stat().st_size > 1000


def test_a_wrong_password_shows_one_message_and_no_session(browser: WebDriver, portal: RunningPortal,
                                                           tmp_path: Path) -> None:
    sign_in(browser, portal.url, "102", "wrong password")
    wait_for(browser, "#signin-error")
    assert browser.find_element(By.ID, "signin-error").text == "The extension or the password is wrong."
    assert browser.get_cookie("pbxsync_session") is None
    screenshot(browser, tmp_path, "wrong-password")


def test_a_one_time_link_sets_the_password_and_signs_in(browser: WebDriver, portal: RunningPortal,
                                                        tmp_path: Path) -> None:
    token = portal.call(lambda: accounts.create_link(portal.ctx.store, "103", portal.ctx.clock.now()))
    browser.delete_all_cookies()
    browser.get(f"{portal.url}/link/{token}")
    wait_for(browser, "#password")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Set your password"
    browser.find_element(By.ID, "password").send_keys("eve's own passphrase")
    browser.find_element(By.ID, "again").send_keys("eve's own passphrase")
    screenshot(browser, tmp_path, "set-password")
    browser.find_element(By.ID, "password-button").click()
    wait_for(browser, ".who")
    assert "Eve Example (103)" in browser.find_element(By.CSS_SELECTOR, ".who").text
    browser.get(f"{portal.url}/link/{token}")  # spent
    wait_for(browser, "h1")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Link not valid"
