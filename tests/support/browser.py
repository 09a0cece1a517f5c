"""Headless Chromium from Debian, driven by Selenium: one browser per test run (the `browser` fixture in
tests/conftest.py), screenshots into the test's tmp_path.

A missing chromium or chromedriver FAILS the test: CI installs both (`make test`), so a skip would hide
that the browser tests never ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 900)
WAIT_SECONDS = 15.0


class BrowserMissing(Exception):
    pass


def start_chromium() -> WebDriver:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            raise BrowserMissing(f"{path} is missing: install Debian's chromium and chromium-driver (make test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-US", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    # Selenium Manager would look for a driver on the network: the Debian one is given outright.
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=CHROMEDRIVER))
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(30)
    return driver


def screenshot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """Save what the browser shows as tmp_path/<name>.png (kept with the test's other files)."""
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(driver: WebDriver, css: str, timeout: float = WAIT_SECONDS) -> None:
    WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def sign_in(driver: WebDriver, base_url: str, extension: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base_url}/signin")
    driver.find_element(By.ID, "extension").send_keys(extension)
    driver.find_element(By.ID, "password").send_keys(password)
    button = driver.find_element(By.ID, "signin-button")
    button.click()
    # the answer (the next page, or the sign-in page again with its error) replaces this document: until then
    # the old page and its <h1> are still there, and a page opened now would go out without the new cookie
    until_replaced(driver, button)


def until_replaced(driver: WebDriver, element: WebElement, timeout: float = 30) -> None:
    """Until the document holding `element` has been replaced (a form's answer has loaded).

    Selenium's `staleness_of` knows only StaleElementReferenceException; chromedriver asked about an
    element while the new document is taking over can also answer "Node with given id does not belong
    to the document" (seen in CI), which says the same thing."""

    def replaced(_: WebDriver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc.msg):
                return True
            raise
        return False

    WebDriverWait(driver, timeout).until(replaced)
