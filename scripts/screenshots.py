"""Regenerate docs/images/*.png: each main page of the portal in headless Chromium, against the demo's data.

Runs `pbxsync demo` (simulated Exchange and Asterisk, a real AUTOCALL meeting) and, while its agent and
portal still run, signs in as the demo's employee and admin and saves a screenshot of every page in the
navigation, plus a booking's audit trail. Needs Debian's chromium and chromium-driver (`make test`
installs them). Usage, from the repository's root: `.venv/bin/python scripts/screenshots.py` or
`make screenshots`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support.browser: one way to start Chromium

from pbxsync.plugin.demo import run_demo  # noqa: E402
from pbxsync.plugin.demo_portal import ADMIN_LOGIN, USER_LOGIN  # noqa: E402
from tests.support.browser import sign_in, start_chromium, wait_for  # noqa: E402

IMAGES = ROOT / "docs" / "images"
WINDOW = (1280, 860)
MAX_HEIGHT = 1600


def nav_links(driver: WebDriver) -> list[tuple[str, str]]:
    links = driver.find_elements(By.CSS_SELECTOR, 'nav[aria-label="Main"] a, nav[aria-label="Admin pages"] a')
    return [(a.text, a.get_attribute("href") or "") for a in links]


def shoot(driver: WebDriver, url: str, name: str, taken: list[Path]) -> None:
    driver.set_window_size(*WINDOW)
    driver.get(url)
    wait_for(driver, "main")
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WINDOW[0], min(max(height, WINDOW[1]), MAX_HEIGHT))  # the whole page, within reason
    path = IMAGES / f"{name}.png"
    driver.save_screenshot(str(path))
    taken.append(path)


def name_of(url: str) -> str:
    path = url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    return "portal-" + (path.strip("/").replace("/", "-") or "home")


def take_all(base: str) -> list[Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    driver = start_chromium()
    try:
        driver.set_window_size(*WINDOW)
        driver.delete_all_cookies()
        shoot(driver, f"{base}signin", "portal-signin", taken)
        sign_in(driver, base.rstrip("/"), *USER_LOGIN)
        wait_for(driver, ".who")
        for _, href in nav_links(driver):  # the employee's own pages
            shoot(driver, href, name_of(href), taken)
        shoot(driver, f"{base}my/contacts?q=4711", "portal-my-contacts-search", taken)  # a number's digits
        driver.get(f"{base}my/conferences")
        meetings = [a.get_attribute("href") or "" for a in driver.find_elements(By.CSS_SELECTOR, "a.conference-link")]
        if meetings:
            shoot(driver, meetings[0], "portal-my-conference", taken)
        sign_in(driver, base.rstrip("/"), *ADMIN_LOGIN)
        wait_for(driver, ".who")
        driver.get(f"{base}admin/users")
        wait_for(driver, ".admin-nav")
        for href in dict.fromkeys(href for _, href in nav_links(driver) if "/admin/" in href):
            shoot(driver, href, name_of(href), taken)
        driver.get(f"{base}admin/bookings?show=all")
        autocall = [a.get_attribute("href") or "" for a in driver.find_elements(By.CSS_SELECTOR, "tbody th a")]
        if autocall:
            shoot(driver, autocall[-1], "portal-admin-booking", taken)
    finally:
        driver.quit()
    return taken


async def main() -> int:
    taken: list[Path] = []

    async def serve(url: str) -> None:
        taken.extend(await asyncio.to_thread(take_all, url))

    code = await run_demo(out=sys.stderr, serve=serve)
    for path in taken:
        print(path.relative_to(ROOT))
    return code if taken else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
