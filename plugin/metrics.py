"""Every Prometheus metric pbxsync exports, defined once so each part imports and increments them.

They live in the default registry (which also carries the process_* and python_* collectors, e.g.
process_resident_memory_bytes). The daemon serves them at `[control] metrics_listen` under /metrics.

Label values are small closed sets (never an e-mail, extension or subject), so cardinality stays bounded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Sync (sync engine, run by the daemon's timers and "Sync now")
SYNC_PASSES = Counter("pbxsync_sync_passes_total", "Sync passes run, by trigger and result",
                      ["trigger", "result"])  # trigger: timer|manual|pre-start|notify ; result: ok|error
SYNC_DURATION = Histogram("pbxsync_sync_duration_seconds", "Wall time of one sync pass", ["trigger"],
                          buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
FOLDER_SYNCS = Counter("pbxsync_folder_syncs_total", "Per-user folder syncs, by folder and result",
                       ["folder", "result"])  # folder: contacts|calendar ; result: ok|error
ITEMS_CHANGED = Counter("pbxsync_items_changed_total", "Stored items changed by sync",
                        ["folder", "change"])  # change: added|updated|deleted

# Change notifications (EWS streaming, Graph): mode is ews-streaming|graph-webhook|graph-polling
NOTIFICATIONS = Counter("pbxsync_notifications_total", "Folder change notifications from Exchange, by reason",
                        ["reason"])  # event|resubscribed|missed|poll
NOTIFICATION_LAG = Histogram("pbxsync_notification_lag_seconds",
                             "First notification of a folder's burst to the end of the sync pass it caused",
                             ["mode"], buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300))
RESUBSCRIPTIONS = Counter("pbxsync_resubscriptions_total", "Change subscriptions re-created after being lost",
                          ["mode"])

# Errors of every part, by kind: auth|access|busy|data|source|store|internal|ami|agi|ldap|control|service
ERRORS = Counter("pbxsync_errors_total", "Errors, by kind", ["kind"])

# Bookings (set from the store at scrape time by a refresher; see register_refresher)
BOOKINGS = Gauge("pbxsync_bookings", "Conference bookings, by state", ["state"])
BOOKING_CHANGES = Counter("pbxsync_booking_changes_total", "Booking planner actions applied",
                          ["action"])  # create|update|cancel|reject

# AUTOCALL
CALLS = Counter("pbxsync_calls_total", "AUTOCALL call attempts, by outcome",
                ["outcome"])  # answered|busy|no_answer|congestion|failed|unknown|not_sent|cancelled
CALL_ATTEMPTS = Gauge("pbxsync_call_attempts", "AUTOCALL attempts stored in the database, by outcome",
                      ["outcome"])  # set from the store at scrape time; survives restarts, unlike CALLS
CALL_START_SKEW = Histogram("pbxsync_call_start_skew_seconds", "Scheduled start to first Originate written",
                            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 120))
AMI_CONNECTED = Gauge("pbxsync_ami_connected", "1 while the AMI link is logged in")

# LDAP phonebook and FastAGI
LDAP_REQUESTS = Counter("pbxsync_ldap_requests_total", "LDAP operations, by operation and result code name",
                        ["operation", "result"])  # operation: bind|search|unbind|...; result: success|...
LDAP_CONNECTIONS = Gauge("pbxsync_ldap_connections", "Open LDAP connections")
AGI_REQUESTS = Counter("pbxsync_agi_requests_total", "FastAGI requests, by service and result",
                       ["service", "result"])  # service: callerid|room|presence ; result: ok|miss|rejected|busy|error
AGI_DURATION = Histogram("pbxsync_agi_request_duration_seconds", "FastAGI request handling time", ["service"],
                         buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))

# Presence (plugin/presence): set by the presence service whenever it computes the users' states
PRESENCE_BUSY_USERS = Gauge("pbxsync_presence_busy_users", "Users busy by their calendar now (BLF shows busy)")

# The daemon itself
SERVICE_UP = Gauge("pbxsync_service_up", "1 while a daemon service runs", ["service"])
SERVICE_RESTARTS = Counter("pbxsync_service_restarts_total", "Restarts of a crashed daemon service", ["service"])
CONFIG_RELOADS = Counter("pbxsync_config_reloads_total", "SIGHUP config reloads, by result", ["result"])

Refresher = Callable[[], Awaitable[None]]
_refreshers: list[Refresher] = []


def register_refresher(refresh: Refresher) -> None:
    """Run `refresh` before each scrape, e.g. to set BOOKINGS from the store (an async query)."""
    if refresh not in _refreshers:
        _refreshers.append(refresh)


def unregister_refresher(refresh: Refresher) -> None:
    if refresh in _refreshers:
        _refreshers.remove(refresh)


async def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The /metrics body. A failing refresher is counted and skipped: metrics must always answer."""
    for refresh in list(_refreshers):
        try:
            await refresh()
        except Exception:  # a scrape must never fail because one gauge could not be read
            ERRORS.labels("service").inc()
    return generate_latest(registry)
