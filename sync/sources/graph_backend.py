"""The `graph` backend: Exchange Online over Microsoft Graph (sync/sources/graph*.py), app-only OAuth.

Its keys are the flat `[exchange]` ones: tenant_id, client_id, client_secret (or certificate_file and
private_key_file), authority, graph_endpoint, ca_file, max_connections, timeout_seconds; and for its change
feed (sync/notify/graph_feed.py) notification_url, notification_listen, poll_seconds, contacts_poll_seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pbxsync.sync.sources.backend import Backend, ReachTarget

if TYPE_CHECKING:
    from pbxsync.sync.config import Config, UserConfig
    from pbxsync.sync.notify.base import ChangeFeed, FeedClock
    from pbxsync.sync.sources.base import MailboxSource


class GraphBackend(Backend):
    name = "graph"

    def make_source(self, config: Config) -> MailboxSource:
        from pbxsync.sync.sources.graph import GraphSource  # msal and requests: imported only when needed

        return GraphSource(config.exchange, config.sync, keep_bodies=config.meetings.write_back)

    def make_feed(self, config: Config, source: MailboxSource, clock: FeedClock) -> ChangeFeed | None:
        from pbxsync.sync.notify.graph_feed import make_graph_feed  # webhooks or batched delta polling

        return make_graph_feed(config, source, clock)

    def problems(self, config: Config) -> list[str]:
        ex = config.exchange
        found: list[str] = []
        if not ex.tenant_id:
            found.append("exchange.tenant_id: required for backend = \"graph\"")
        if not ex.client_id:
            found.append("exchange.client_id: required for backend = \"graph\"")
        if not ex.client_secret and not (ex.certificate_file and ex.private_key_file):
            found.append("exchange.client_secret: required for backend = \"graph\" "
                         "(or certificate_file and private_key_file)")
        return found + _notification_problems(config)

    def reach_targets(self, config: Config) -> list[ReachTarget]:
        return [ReachTarget("token endpoint", config.exchange.authority),
                ReachTarget("Graph", config.exchange.graph_endpoint)]

    def account(self, config: Config) -> str:
        return config.exchange.client_id

    def auth_fix(self, config: Config) -> str:
        return ("check [exchange] tenant_id, client_id and client_secret (or certificate); an expired client "
                "secret must be renewed in Entra ID")

    def access_fix(self, config: Config, user: UserConfig) -> str:
        return ("grant the app the application permissions Calendars.Read and Contacts.Read with admin consent, "
                f"and include {user.mailbox} in its application access policy (see docs/exchange-online-graph.md)")


def _notification_problems(config: Config) -> list[str]:
    ex = config.exchange
    found: list[str] = []
    if ex.notification_url:
        url = urlsplit(ex.notification_url)
        loopback = url.hostname in ("127.0.0.1", "::1", "localhost")  # the simulator, tests
        if not url.hostname or url.query or url.fragment or not (
                url.scheme == "https" or (url.scheme == "http" and loopback)):
            found.append("exchange.notification_url: must be a public https:// URL without query "
                         f"(Graph only POSTs to HTTPS), got {ex.notification_url[:100]!r}")
    for key, value in (("poll_seconds", ex.poll_seconds), ("contacts_poll_seconds", ex.contacts_poll_seconds)):
        if value != 0 and not 5 <= value <= 86400:
            found.append(f"exchange.{key}: must be 0 (off) or between 5 and 86400, got {value}")
    return found


GRAPH = GraphBackend()
