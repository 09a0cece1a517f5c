"""The demo's web portal: demo passwords for a user and an admin, a check that signing in and the admin's
outcomes chart work over HTTP, and the lines that tell the reader where to look.

The demo's agent serves the portal on 127.0.0.1 and a free port (`[web] listen = "127.0.0.1:0"`). The
passwords are printed on purpose: they exist only in the demo's temporary database and the portal
answers only on loopback.
"""

from __future__ import annotations

import re

import aiohttp

from pbxsync.plugin.daemon.app import Daemon
from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.server import WebService

ADMIN_LOGIN = ("101", "demo-admin")  # Alice, in [web] admins
USER_LOGIN = ("102", "demo-user")  # Bob
WEB_SECTION = {"enabled": True, "listen": "127.0.0.1:0", "admins": [ADMIN_LOGIN[0]]}


def portal_of(daemon: Daemon) -> WebService:
    service = daemon.supervisor.service("web")
    if not isinstance(service, WebService):
        raise RuntimeError("the web portal is not running")
    return service


async def set_demo_passwords(daemon: Daemon) -> str:
    """Give the demo's admin and user their passwords; returns the portal's URL."""
    portal = portal_of(daemon)
    for extension, password in (ADMIN_LOGIN, USER_LOGIN):
        await accounts.set_password(daemon.store, extension, password, daemon.clock.now())
    return portal.url


async def check_portal(url: str) -> str:
    """Sign in as the admin over HTTP and open the outcomes chart; returns "" or what went wrong."""
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{url}signin") as response:
            form = await response.text()
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        if response.status != 200 or token is None:
            return f"the sign-in page answered HTTP {response.status}"
        data = {"extension": ADMIN_LOGIN[0], "password": ADMIN_LOGIN[1], "csrf": token.group(1),
                "next": "/admin/outcomes"}
        async with session.post(f"{url}signin", data=data) as response:
            page = await response.text()
        if response.status != 200 or 'id="outcomes-chart"' not in page:
            return f"signing in as {ADMIN_LOGIN[0]} did not show the outcomes chart (HTTP {response.status})"
    return ""


def login_lines(url: str) -> list[str]:
    return [f"Portal: {url}",
            f"  sign in as {ADMIN_LOGIN[0]} with password {ADMIN_LOGIN[1]!r} (an admin: Admin → AUTOCALL outcomes),",
            f"  or as {USER_LOGIN[0]} with password {USER_LOGIN[1]!r} (an employee)"]
