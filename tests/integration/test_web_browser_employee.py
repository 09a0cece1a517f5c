"""*My contacts* and *My conferences* in real headless Chromium, against the AMI simulator (screenshots in
the test's tmp_path): search as you type, click to call, the live room, hostile names and subjects shown
as text, and another user's conference refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pbxsync.plugin.ami.client import AmiClient
from pbxsync.plugin.ami.sim_world import Member
from pbxsync.plugin.ami.simulator import AsteriskSimulator
from pbxsync.plugin.booking.model import Booking
from pbxsync.sync.store.db import Store
from tests.support.browser import WAIT_SECONDS, screenshot, sign_in, wait_for
from tests.support.web_employee import XSS, book, fill_phonebook, meeting, simulated_pbx
from tests.support.web_portal import RunningPortal, password_of, portal_in_thread

pytestmark = pytest.mark.browser


class Office:
    """The portal (thread of its own) with the simulator as its AMI link, in the portal's loop."""

    def __init__(self, portal: RunningPortal) -> None:
        self.portal = portal
        self.sim: AsteriskSimulator | None = None
        self._pbx: Any = None

    def start_pbx(self) -> AsteriskSimulator:
        async def start() -> tuple[AsteriskSimulator, AmiClient]:
            self._pbx = simulated_pbx()
            return await self._pbx.__aenter__()  # type: ignore[no-any-return]

        self.sim, ami = self.portal.call(start)
        self.portal.ctx.ami.publish(ami)
        return self.sim

    def stop_pbx(self) -> None:
        if self._pbx is not None:
            self.portal.call(lambda: self._pbx.__aexit__(None, None, None))

    def book(self, *args: Any, **kwargs: Any) -> Booking:
        store: Store = self.portal.ctx.store
        now: datetime = self.portal.ctx.clock.now()
        return self.portal.call(lambda: book(store, meeting(*args, **kwargs), now))  # type: ignore[no-any-return]


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    async def fill(store: Store) -> None:
        await fill_phonebook(store, datetime.now().astimezone())

    with portal_in_thread(tmp_path, fill) as portal:
        running = Office(portal)
        running.start_pbx()
        try:
            yield running
        finally:
            running.stop_pbx()


def no_alert(browser: WebDriver) -> None:
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    assert browser.title != "pwned"


def type_slowly(browser: WebDriver, text: str) -> None:
    field = browser.find_element(By.ID, "q")
    for ch in text:
        field.send_keys(ch)


def names(browser: WebDriver) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .contact-name")]


def test_typing_four_digits_finds_the_contact_and_a_click_rings_the_users_phone(
        browser: WebDriver, office: Office, tmp_path: Path) -> None:
    sign_in(browser, office.portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    browser.get(f"{office.portal.url}/my/contacts")
    type_slowly(browser, "5678")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: names(d) == ["Carla Kunde"])
    assert "q=5678" in browser.current_url  # the address follows, so a reload shows the same
    assert browser.find_element(By.CSS_SELECTOR, "#results .international").text == "+49 30 12345678"
    screenshot(browser, tmp_path, "contacts-search")
    browser.find_element(By.CSS_SELECTOR, "#results button.call").click()
    wait_for(browser, "#call-result")
    assert "your phone is now calling Carla Kunde" in browser.find_element(By.ID, "call-result").text
    screenshot(browser, tmp_path, "click-to-call")
    assert office.sim is not None
    (sent,) = office.sim.originates
    assert (sent.get("Channel"), sent.get("Exten")) == ("PJSIP/102", "+493012345678")


def test_a_hostile_contact_name_is_shown_as_text(browser: WebDriver, office: Office, tmp_path: Path) -> None:
    sign_in(browser, office.portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    browser.get(f"{office.portal.url}/my/contacts")
    type_slowly(browser, "Evil")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: names(d) == [XSS])  # typed: rendered by the script
    no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#results img, #results script") == []
    browser.get(f"{office.portal.url}/my/contacts?q=Evil")  # without the script: rendered by the server
    assert names(browser) == [XSS]
    no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#results img, #results script") == []
    screenshot(browser, tmp_path, "contacts-xss")


def test_a_running_meetings_room_shows_its_members_live(browser: WebDriver, office: Office,
                                                        tmp_path: Path) -> None:
    now = office.portal.ctx.clock.now()
    booking = office.book("102", ["101", "103"], now - timedelta(minutes=2), subject=f"Board {XSS}")
    sim = office.sim
    assert sim is not None
    sim.add_member("800", Member("PJSIP/102-00000001", "1.1", "102", "Bob", "rooms", "800", "1", admin=True))
    sign_in(browser, office.portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    browser.get(f"{office.portal.url}/my/conferences")
    browser.find_element(By.CSS_SELECTOR, f'tr[data-conference="{booking.id}"] a').click()
    wait_for(browser, "#members .member-name")
    assert browser.find_element(By.ID, "subject").text == f"Board {XSS}"
    no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main h1 script") == []
    sim.add_member("800", Member("PJSIP/103-00000002", "1.2", "103", "Eve", "rooms", "800", "1"))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#members .member-name")] == [
            "User 102", "User 103"])
    assert browser.find_element(By.ID, "member-count").text == "2 in the room."
    screenshot(browser, tmp_path, "live-room")
    browser.find_element(By.CSS_SELECTOR, '#members li[data-extension="103"] button[data-action="mute"]').click()
    wait_for(browser, "#host-result")
    assert browser.find_element(By.ID, "host-result").text == "User 103 is muted."
    assert sim.members("800")[1].muted


def test_another_users_conference_page_is_refused(browser: WebDriver, office: Office, tmp_path: Path) -> None:
    now = office.portal.ctx.clock.now()
    booking = office.book("101", ["103"], now + timedelta(hours=1), "801", subject="Ada and Eve only")
    sign_in(browser, office.portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    browser.get(f"{office.portal.url}/conferences/{booking.id}")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "This conference belongs to other people." in body and "Ada and Eve only" not in body
    screenshot(browser, tmp_path, "conference-refused")


def test_search_and_call_work_from_the_keyboard(browser: WebDriver, office: Office, tmp_path: Path) -> None:
    sign_in(browser, office.portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    browser.get(f"{office.portal.url}/my/contacts")
    field = browser.find_element(By.ID, "q")
    field.send_keys("Carla")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: names(d) == ["Carla Kunde"])
    field.send_keys(Keys.TAB)  # the Search button
    browser.switch_to.active_element.send_keys(Keys.TAB)  # the first Call button
    focused = browser.switch_to.active_element
    assert focused.get_attribute("aria-label") == "Call Carla Kunde, Business 030 12345678"
    focused.send_keys(Keys.ENTER)
    wait_for(browser, "#call-result")
    assert "Carla Kunde" in browser.find_element(By.ID, "call-result").text
    label = browser.find_element(By.CSS_SELECTOR, 'label[for="q"]')
    assert label.text == "Name, company or number"
    screenshot(browser, tmp_path, "keyboard-call")
