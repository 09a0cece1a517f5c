"""Issue 17's "Must show" (phonebook part): `curl` with a phone's credentials gets a Yealink XML book
holding the user's synced contacts with dialable numbers.

The real `pbxsync run` process syncs alice's and bob's contacts from the EWS simulator; Debian's `curl`
then fetches alice's book with her LDAP credentials (HTTP Basic) and with a token made by
`pbxsync phonebook token 201`: her contacts (hostile name included, escaped), numbers with the outside
line prefix in national form, none of bob's. Wrong credentials get 401; the ETag gets 304.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pbxsync.sync.simulator.ews_server import EwsSimulator
from pbxsync.sync.simulator.mailboxes import Organisation
from tests.support.pbxsync_run import MUST_SHOW_USERS, log_tail, pbxsync, pbxsync_running, poll

HOSTILE = "Evil <b>&amp; \u202eCorp"  # control characters cannot cross EWS XML; the unit tests have them
DATA: dict[str, Any] = {
    "domain": "example.com",
    "users": MUST_SHOW_USERS,
    "mailboxes": {
        "alice@example.com": {"contacts": [
            {"given_name": "Zoë", "surname": "Müller", "company": "Acme GmbH",
             "phones": {"business": "+49 30 1234-4711", "mobile": "0171 2345678"}},
            {"display_name": "Dana New York", "phones": {"home": "+1 212 555 0100"}},
            {"display_name": HOSTILE, "phones": {"business": "089 555 0100"}},
        ]},
        "bob@example.com": {"contacts": [
            {"given_name": "Bobs", "surname": "Secret", "phones": {"mobile": "0170 9999999"}},
        ]},
    },
}


@pytest.fixture
def ews() -> Iterator[EwsSimulator]:
    with EwsSimulator(Organisation.from_dict(DATA, source="must-show-phonebook")) as sim:
        yield sim


def config_text(tmp_path: Path, ews: EwsSimulator) -> str:
    return f"""
database = "{tmp_path / 'pbxsync.db'}"

[exchange]
server = "{ews.ews_url}"
auth = "basic"
username = "svc-pbx@example.com"
password = "svc-pw"

[[users]]
extension = "201"
email = "alice@example.com"
ldap_password = "alice-phone-pw"

[[users]]
extension = "202"
email = "bob@example.com"
ldap_password = "bob-phone-pw"

[agi]
listen = "127.0.0.1:0"

[ldap]
listen = "127.0.0.1:0"
shared_mailboxes = []

[phonebook]
listen = "127.0.0.1:0"
dial_prefix = "0"
number_format = "national"
refresh_seconds = 1

[control]
socket = "{tmp_path / 'control.sock'}"
metrics_listen = ""

[log]
format = "json"
"""


async def curl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec("curl", "--silent", "--show-error", "--max-time", "10", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8"), err.decode()


def book(xml: str) -> dict[str, list[str]]:
    root = ET.fromstring(xml)
    assert root.tag == "YealinkIPPhoneDirectory"
    return {e.findtext("Name") or "": [t.text or "" for t in e.iterfind("Telephone")]
            for e in root.iterfind("DirectoryEntry")}


async def test_curl_with_a_phones_credentials_gets_the_users_yealink_book(tmp_path: Path, ews: EwsSimulator) -> None:
    assert shutil.which("curl"), "curl is missing: run scripts/setup-system-deps.sh"
    config = tmp_path / "pbxsync.toml"
    config.write_text(config_text(tmp_path, ews), encoding="utf-8")
    log = tmp_path / "agent.log"
    agent_log = partial(log_tail, log)
    phonebook: dict[str, Any] = {}
    async with pbxsync_running(config, log) as proc:
        async def synced() -> bool:
            assert proc.returncode is None, f"pbxsync run exited with {proc.returncode}\n{agent_log()}"
            code, out, _ = await pbxsync(config, "status", "--json")
            if code == 2:  # not up yet
                return False
            found = [s for s in json.loads(out)["services"] if s["name"] == "phonebook"]
            phonebook.update(found[0] if found else {})
            return bool(found and (found[0].get("data") or {}).get("contacts") == 4)

        await poll(synced, datetime.now(UTC) + timedelta(seconds=60), lambda: f"{phonebook}\n{agent_log()}")
        base = "http://" + phonebook["data"]["listen"]

        code, xml, err = await curl("--fail", "--user", "201:alice-phone-pw", f"{base}/yealink.xml")
        assert code == 0, err
        alice = book(xml)
        assert alice == {
            "Dana New York": ["00012125550100"],  # outside line 0, then the international prefix 00
            "Evil <b>&amp; Corp": ["0089 5550100".replace(" ", "")],  # escaped text, RTL override gone
            "Zoë Müller": ["003012344711", "001712345678"],
        }, xml

        code, out, err = await pbxsync(config, "phonebook", "token", "201", "--base-url", base)
        assert code == 0, err
        match = re.search(rf"yealink\s+({re.escape(base)}/yealink/[A-Za-z0-9_-]{{32}}\.xml)", out)
        assert match, out
        fetched: list[str] = []

        async def token_works() -> bool:  # the daemon notices the new token within refresh_seconds
            code, xml, err = await curl("--fail", match.group(1))
            fetched[:] = [xml or err]
            return code == 0

        await poll(token_works, datetime.now(UTC) + timedelta(seconds=10), lambda: f"{fetched}\n{agent_log()}")
        assert book(fetched[0]) == alice

        code, status, _ = await curl("--output", "/dev/null", "--write-out", "%{http_code}",
                                     "--user", "201:wrong", f"{base}/yealink.xml")
        assert status == "401"
        code, headers, _ = await curl("--dump-header", "-", "--output", "/dev/null",
                                      "--user", "201:alice-phone-pw", f"{base}/yealink.xml")
        etag = re.search(r"(?im)^etag:\s*(\S+)", headers)
        assert etag, headers
        code, status, _ = await curl("--output", "/dev/null", "--write-out", "%{http_code}", "--header",
                                     f"If-None-Match: {etag.group(1)}", "--user", "201:alice-phone-pw",
                                     f"{base}/yealink.xml")
        assert status == "304"
