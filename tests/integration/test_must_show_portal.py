"""Issue 18's "Must show", end to end: the real `pbxsync run` with `[web]` on, the
REAL Asterisk 22 with the shipped dialplan and least-privilege AMI classes, the EWS simulator, and
headless Chromium.

Bob (102) has Carla Kunde (+49 30 1234 5678) in his Exchange contacts and is invited, with Carol (103), to
Alice's (101) `PBX AUTOCALL` meeting, which starts shortly after the daemon does. The admin sets Bob's
portal password with `pbxsync passwd 102 --stdin`. In the browser Bob signs in, types four digits of
Carla's number into *My contacts*, sees her appear, clicks *Call*: Asterisk rings Bob's own phone (the
Local channel to test phone 102) and sends it on to the click-to-call context with Carla's number. Then
he opens *My conferences*, the running AUTOCALL meeting, and sees its three members in the room. Last Alice,
an admin, signs in and sees the AUTOCALL outcomes chart with today's answered calls drawn. Screenshots land
in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from tests.support.asterisk_harness import AsteriskInstance
from tests.support.browser import screenshot, sign_in, wait_for
from tests.support.pbxsync_run import (
    MUST_SHOW_USERS,
    PBXSYNC,
    PHONES_CONTEXT,
    autocall_asterisk,
    daemon_config,
    extension_of,
    log_tail,
    pbxsync_running,
    poll,
    room_members,
)
from tests.support.ports import port_for_config
from tests.support.web_employee import CLICK_TO_CALL_CONTEXT, CLICK_TO_CALL_DIALPLAN

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

ROOM = "8401"
PEOPLE = {"101": "alice@example.com", "102": "bob@example.com", "103": "carol@example.com"}
LEAD_SECONDS = 25
BOB_PASSWORD = "correct horse battery staple 102"
ALICE_PASSWORD = "admin horse battery staple 101"


def organisation() -> Organisation:
    return Organisation.from_dict({
        "domain": "example.com",
        "users": MUST_SHOW_USERS,
        "mailboxes": {"bob@example.com": {"contacts": [
            {"display_name": "Carla Kunde", "company": "ACME GmbH", "phones": {"business": "+49 30 1234 5678"}},
            {"display_name": "Dieter Lieferant", "company": "Globex AG", "phones": {"business": "089 98765-43"}}]}},
        "meetings": [
            {"uid": "must-show-portal", "subject": "Must show: the portal", "location": "PBX AUTOCALL",
             "organizer": {"email": "alice@example.com", "name": "Alice Example"},
             "attendees": [{"email": "bob@example.com", "name": "Bob Builder", "response": "accept"},
                           {"email": "carol@example.com", "name": "Carol Jones", "response": "accept"}],
             "start": f"now+{LEAD_SECONDS}s", "duration_minutes": 30, "timezone": "Europe/Berlin"},
        ],
    }, source="must-show-portal")


@pytest.fixture
def pbx(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return autocall_asterisk(asterisk_factory, CLICK_TO_CALL_DIALPLAN)


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(organisation()) as sim:
        yield sim


def config_text(tmp_path: Path, ews: EwsSimulator, pbx: AsteriskInstance, web_port: int) -> str:
    users = "".join(f'[[users]]\nextension = "{ext}"\nemail = "{email}"\n'
                    + (f'room = "{ROOM}"\n' if ext == "101" else "") for ext, email in PEOPLE.items())
    return daemon_config(tmp_path, ews.ews_url, pbx, users, [ROOM], interval_minutes=1) + f"""
[web]
enabled = true
listen = "127.0.0.1:{web_port}"
admins = ["101"]
click_to_call_context = "{CLICK_TO_CALL_CONTEXT}"
"""


def names(browser: WebDriver) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .contact-name")]


def members_shown(browser: WebDriver) -> list[str]:
    return sorted(e.get_attribute("data-extension") or "" for e in browser.find_elements(By.CSS_SELECTOR,
                                                                                           "#members .member"))


async def test_an_employee_finds_a_contact_calls_it_and_watches_the_autocall_room(
        tmp_path: Path, pbx: AsteriskInstance, ews: EwsSimulator, browser: WebDriver) -> None:
    (meeting,) = ews.org.meetings("alice@example.com")
    start = meeting.start.astimezone(UTC)
    config = tmp_path / "pbxsync.toml"
    web_port = port_for_config()
    config.write_text(config_text(tmp_path, ews, pbx, web_port), encoding="utf-8")
    for extension, password in (("102", BOB_PASSWORD), ("101", ALICE_PASSWORD)):
        passwd = subprocess.run([str(PBXSYNC), "--config", str(config), "passwd", extension, "--stdin"],
                                input=password + "\n", capture_output=True, text=True, timeout=60, check=False)
        assert passwd.returncode == 0, passwd.stderr
    log = tmp_path / "agent.log"
    agent_log = partial(log_tail, log)
    url = f"http://127.0.0.1:{web_port}"

    async with pbxsync_running(config, log) as proc:
        async def portal_listening() -> bool:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"
            return await asyncio.to_thread(portal_up, url)

        await poll(portal_listening, datetime.now(UTC) + timedelta(seconds=60), agent_log)

        # My contacts: four digits find Carla (Bob's contacts may still be syncing: type again until they are)
        sign_in(browser, url, "102", BOB_PASSWORD)
        wait_for(browser, "h1")
        found = False
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while not found:
            browser.get(f"{url}/my/contacts")
            field = browser.find_element(By.ID, "q")
            for ch in "5678":
                field.send_keys(ch)
            try:
                WebDriverWait(browser, 5).until(lambda d: names(d) == ["Carla Kunde"])
                found = True
            except Exception:
                assert datetime.now(UTC) < deadline, f"Carla never appeared: {names(browser)}\n{agent_log()}"
        screenshot(browser, tmp_path, "must-show-contacts")

        # Click to call: Bob's own phone rings on the real Asterisk and goes on to Carla's number
        browser.find_element(By.CSS_SELECTOR, "#results button.call").click()
        wait_for(browser, "#call-result")
        assert "Carla Kunde" in browser.find_element(By.ID, "call-result").text
        screenshot(browser, tmp_path, "must-show-click-to-call")
        await pbx.await_log("test phone 102 answering", timeout=20)
        await pbx.await_log("click to call dials +493012345678", timeout=20)

        # My conferences: the AUTOCALL meeting, running, with its members in the room
        members: list[dict[str, str]] = []

        async def everybody_in_the_room() -> bool:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"
            members[:] = await room_members(pbx, ROOM)
            return {extension_of(m["Channel"]) for m in members} == set(PEOPLE)

        await poll(everybody_in_the_room, start + timedelta(seconds=40),
                   lambda: f"not all in room {ROOM}: {members}\n{agent_log()}\n{pbx.log_tail(40)}")
        browser.get(f"{url}/my/conferences")
        wait_for(browser, "a.conference-link")
        browser.find_element(By.CSS_SELECTOR, "a.conference-link").click()
        wait_for(browser, "#live-room")
        assert browser.find_element(By.ID, "subject").text == "Must show: the portal"
        WebDriverWait(browser, 20).until(lambda d: members_shown(d) == sorted(PEOPLE))
        assert browser.find_element(By.ID, "dial-in").text == ROOM
        screenshot(browser, tmp_path, "must-show-live-room")
        assert (tmp_path / "must-show-live-room.png").stat().st_size > 1000

        # The admin: the AUTOCALL outcomes chart draws today's answered calls, and its table agrees
        sign_in(browser, url, "101", ALICE_PASSWORD)
        wait_for(browser, "h1")
        browser.get(f"{url}/admin/outcomes")
        wait_for(browser, "svg#outcomes-chart")
        today = datetime.now(UTC).date().isoformat()
        answered = [bar for bar in browser.find_elements(By.CSS_SELECTOR, "#outcomes-chart rect.bar")
                    if (bar.get_attribute("data-category"), bar.get_attribute("data-series")) == (today, "answered")]
        assert len(answered) == 1 and int(answered[0].get_attribute("data-value") or 0) >= len(PEOPLE) - 1
        assert float(answered[0].get_attribute("height") or 0) > 0 and answered[0].is_displayed()
        row = browser.find_element(By.XPATH, f"//table[@id='outcomes-table']//tr[th='{today}']")
        assert int(row.find_elements(By.TAG_NAME, "td")[0].text) == int(answered[0].get_attribute("data-value") or 0)
        screenshot(browser, tmp_path, "must-show-admin-outcomes")

    assert proc.returncode == 0, agent_log()
    text = log.read_text(encoding="utf-8")
    assert "Traceback" not in text and BOB_PASSWORD not in text and ALICE_PASSWORD not in text, agent_log()
    assert pbx.secret not in text, agent_log()
    assert PHONES_CONTEXT in config.read_text(encoding="utf-8")


def portal_up(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/signin", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
