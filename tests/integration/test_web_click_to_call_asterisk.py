"""Click to call in real headless Chromium on the REAL Asterisk 22: the employee's own phone (a Local
channel to the answering test phone of their extension) rings, answers, and is sent to the configured
outbound context with the contact's number. The AMI user holds the least-privilege classes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pbxsync.plugin.ami.client import AmiClient, AmiSettings
from pbxsync.sync.config import PbxConfig
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import Store
from tests.support.asterisk_harness import AsteriskInstance
from tests.support.browser import WAIT_SECONDS, screenshot, sign_in, wait_for
from tests.support.web_employee import CLICK_TO_CALL_CONTEXT, CLICK_TO_CALL_DIALPLAN, fill_phonebook, use_config
from tests.support.web_portal import RunningPortal, password_of, portal_in_thread

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]



@pytest.fixture
def pbx(asterisk_factory: Callable[..., AsteriskInstance]) -> AsteriskInstance:
    return asterisk_factory(extensions=CLICK_TO_CALL_DIALPLAN, ami_read="call,system",
                            ami_write="originate,call,reporting")


@pytest.fixture
def portal(tmp_path: Path, pbx: AsteriskInstance) -> Iterator[RunningPortal]:
    async def fill(store: Store) -> None:
        await fill_phonebook(store, datetime.now(UTC))

    with portal_in_thread(tmp_path, fill) as running:
        use_config(running.ctx, replace(
            running.ctx.config, pbx=PbxConfig(port=pbx.port, username=pbx.user, secret=Secret(pbx.secret),
                                              dial="Local/{extension}@fake-phones"),
            web=replace(running.ctx.config.web, click_to_call_context=CLICK_TO_CALL_CONTEXT)))
        ami = AmiClient(AmiSettings(port=pbx.port, username=pbx.user, secret=Secret(pbx.secret),
                                    action_timeout=5.0, backoff_initial=0.1))

        async def connect() -> bool:
            ami.start()
            return await ami.wait_connected(15.0)

        assert running.call(connect)
        running.ctx.ami.publish(ami)
        try:
            yield running
        finally:
            running.call(ami.stop)


async def channels(pbx: AsteriskInstance) -> list[dict[str, Any]]:
    async with pbx.ami() as ami:
        return list(await ami.action_list("CoreShowChannels"))


def test_click_to_call_rings_the_employees_own_phone_on_asterisk(
        browser: WebDriver, portal: RunningPortal, pbx: AsteriskInstance, tmp_path: Path) -> None:
    sign_in(browser, portal.url, "102", password_of("102"))
    wait_for(browser, "h1")
    browser.get(f"{portal.url}/my/contacts")
    field = browser.find_element(By.ID, "q")
    for ch in "5678":
        field.send_keys(ch)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#results .contact-name")] == ["Carla Kunde"])
    browser.find_element(By.CSS_SELECTOR, "#results button.call").click()
    wait_for(browser, "#call-result")
    result = browser.find_element(By.ID, "call-result").text
    assert result in ("You answered: your phone is now calling Carla Kunde.",
                      "Your phone is ringing. Pick it up to call Carla Kunde."), result
    screenshot(browser, tmp_path, "click-to-call-asterisk")
    pbx.wait_for_log("fake phone 102 answering", timeout=15)  # the employee's own phone, nobody else's
    pbx.wait_for_log("click to call dials +493012345678", timeout=15)
    live = [c["Channel"] for c in portal.call(lambda: channels(pbx))]
    assert any(c.startswith("Local/102@fake-phones-") for c in live), live
    assert not any("/101@" in c or "/103@" in c for c in live), live
