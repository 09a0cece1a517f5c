"""`pbxsync check` for the web portal: its certificate and key load, its signing key file is private, and
a portal reachable from the network is not served in clear text (passwords would cross the LAN readable).
The port itself is checked with the other listeners (plugin.check.local.listeners)."""

from __future__ import annotations

import os

from pbxsync.plugin.web.secret_key import key_path
from pbxsync.sync.config import Config
from pbxsync.sync.http_site import HttpSiteError, tls_context
from pbxsync.sync.preflight import CheckResult, failed, passed, warned


def check_web(config: Config) -> list[CheckResult]:
    web = config.web
    if not web.enabled:
        return []
    results: list[CheckResult] = []
    if web.tls_cert:
        try:
            tls_context(web.tls_cert, web.tls_key, "web.tls_cert/tls_key")
            results.append(passed("web tls", f"{web.tls_cert} and its key load"))
        except HttpSiteError as exc:
            results.append(failed("web tls", str(exc), "point web.tls_cert/tls_key at a PEM certificate chain "
                                  "and its key, readable by the pbxsync user"))
    elif not web.listen.is_loopback and not web.trusted_proxies:
        results.append(warned("web tls", f"the portal listens on {web.listen} without TLS: passwords and session "
                              "cookies cross the network readable",
                              "set web.tls_cert/tls_key, or listen on 127.0.0.1 behind a TLS reverse proxy "
                              "(web.trusted_proxies; docs/web.md)"))
    key = key_path(config)
    try:
        mode = os.stat(key).st_mode & 0o777
    except OSError:
        results.append(passed("web signing key", f"{key} does not exist yet: the daemon creates it (mode 0600)"))
        return results
    if mode & 0o077:
        results.append(warned("web signing key", f"{key} is mode {mode:04o}: whoever reads it can forge sessions",
                              f"chmod 600 {key} (owned by the pbxsync user)"))
    else:
        results.append(passed("web signing key", f"{key} is mode {mode:04o}"))
    return results
