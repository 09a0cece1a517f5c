"""The EWS streaming feed's decisions, as pure functions over plain data (time is an argument).

Rules (Microsoft's "Maintain affinity between a group of subscriptions and the Mailbox server"):
- One streaming subscription per mailbox, on all of its synced folders (the calendar; Contacts and the
  phonebook folders below it). Exchange counts EWSMaxSubscriptions per mailbox subscription, not per
  folder, and events name their folder (ParentFolderId), so one subscription per mailbox halves the budget
  used and the ids per connection.
- Subscriptions are grouped per EWS endpoint and per owner (the account that created them: the service
  account under impersonation, else each user). A group holds at most 200 subscriptions, and its mailboxes
  sorted alphabetically; its anchor is the first. Every request of the group carries X-AnchorMailbox = the
  anchor and X-PreferServerAffinity, and one GetStreamingEvents connection serves the whole group.
- A connection is asked for `connection_minutes` (Exchange allows 1-30) and is ended and re-opened by us
  `renew_before_seconds` before that runs out, so a server that never says "Closed" cannot stall us.
- Exchange forgets a subscription about 30 minutes after its last connection. After a gap longer than
  `subscription_lifetime_seconds` every subscription of the group is presumed dead and re-created.
- Each subscription and each connection retries with doubling back-off; after `max_failures` failures in
  a row (a subscription lost again before it carried anything counts as one) its folders fall back to
  timed polling (shown in `pbxsync status`) and streaming is tried again every `fallback_retry_seconds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pbxsync.sync.model import Folder

MAX_SUBSCRIPTIONS_PER_CONNECTION = 200  # Microsoft's limit of subscription ids in one GetStreamingEvents


@dataclass(frozen=True)
class StreamingPolicy:
    connection_minutes: int = 10  # ConnectionTimeout asked of Exchange (1-30)
    renew_before_seconds: float = 30.0
    subscription_lifetime_seconds: float = 25 * 60.0  # Exchange keeps one ~30 min after its last connection
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    max_failures: int = 3
    fallback_retry_seconds: float = 300.0
    max_per_connection: int = MAX_SUBSCRIPTIONS_PER_CONNECTION
    max_connections: int = 100  # beyond this (no impersonation: one per user) mailboxes stay on timed polling
    parallel_subscribes: int = 4  # Subscribe requests in flight per group (after the anchor's, which goes first)

    def __post_init__(self) -> None:
        if not 1 <= self.connection_minutes <= 30:
            raise ValueError("connection_minutes must be 1-30 (what Exchange accepts)")
        if not 1 <= self.max_per_connection <= MAX_SUBSCRIPTIONS_PER_CONNECTION:
            raise ValueError(f"max_per_connection must be 1-{MAX_SUBSCRIPTIONS_PER_CONNECTION}")
        if not 0 <= self.renew_before_seconds < self.connection_minutes * 60:
            raise ValueError("renew_before_seconds must be shorter than the connection")


@dataclass(frozen=True)
class Target:
    """One mailbox to subscribe: which folders, at which EWS endpoint, owned by which account."""

    mailbox: str
    folders: tuple[Folder, ...]
    endpoint: str
    owner: str


@dataclass(frozen=True)
class ConnectionGroup:
    anchor: str  # X-AnchorMailbox of every request of the group: its alphabetically first mailbox
    endpoint: str
    owner: str
    targets: tuple[Target, ...]


def plan_groups(targets: Iterable[Target], max_per_connection: int = MAX_SUBSCRIPTIONS_PER_CONNECTION,
                ) -> tuple[ConnectionGroup, ...]:
    """Targets -> connection groups: same endpoint and owner, sorted by mailbox, at most `max_per_connection`."""
    by_key: dict[tuple[str, str], dict[str, Target]] = {}
    for target in targets:
        by_key.setdefault((target.endpoint, target.owner.lower()), {})[target.mailbox.lower()] = target
    groups: list[ConnectionGroup] = []
    for (endpoint, owner), found in sorted(by_key.items()):
        ordered = [found[m] for m in sorted(found)]
        for start in range(0, len(ordered), max_per_connection):
            chunk = tuple(ordered[start:start + max_per_connection])
            groups.append(ConnectionGroup(chunk[0].mailbox.lower(), endpoint, owner, chunk))
    return tuple(groups)


def renew_at(opened_at: datetime, policy: StreamingPolicy) -> datetime:
    """When we end a connection and open the next one (before Exchange's ConnectionTimeout runs out)."""
    return opened_at + timedelta(seconds=policy.connection_minutes * 60 - policy.renew_before_seconds)


def presumed_expired(last_connected: datetime | None, now: datetime, policy: StreamingPolicy) -> bool:
    """True when the group went without a connection long enough that Exchange dropped its subscriptions."""
    if last_connected is None:
        return False
    return (now - last_connected).total_seconds() > policy.subscription_lifetime_seconds


@dataclass(frozen=True)
class Attempts:
    """Retry state of one subscription or one connection."""

    failures: int = 0  # in a row
    retry_at: datetime | None = None  # None: may try now
    fallback: bool = False  # its folders are on timed polling until a success

    def due(self, now: datetime) -> bool:
        return self.retry_at is None or self.retry_at <= now


def after_failure(attempts: Attempts, now: datetime, policy: StreamingPolicy) -> Attempts:
    failures = attempts.failures + 1
    fallback = failures >= policy.max_failures
    if fallback:
        delay = policy.fallback_retry_seconds
    else:
        delay = min(policy.retry_initial_seconds * 2 ** (failures - 1), policy.retry_max_seconds)
    return Attempts(failures, now + timedelta(seconds=delay), fallback)


def after_success(attempts: Attempts) -> Attempts:
    """It worked and was proven: a connection ended normally, or an event came through it."""
    return Attempts()


def after_subscribed(attempts: Attempts) -> Attempts:
    """A subscription was (re)created: off fallback, but the failures count on until it is proven, so
    one Exchange keeps losing at once still ends on timed polling instead of a tight loop."""
    return replace(attempts, retry_at=None, fallback=False)


def next_wakeup(candidates: Iterable[datetime | None]) -> datetime | None:
    """The earliest of the given retry times (None entries are ignored)."""
    times = [t for t in candidates if t is not None]
    return min(times) if times else None


def folders_of_event(folder_ids: Sequence[str], known: Mapping[str, Folder],
                     subscribed: tuple[Folder, ...]) -> tuple[Folder, ...]:
    """The synced folders an event concerns: those whose id it names (ParentFolderId, OldParentFolderId,
    FolderId). An event naming none we know (a folder id changed, a move between unknown folders) counts
    for every subscribed folder: syncing one folder too many costs little, missing one costs a change."""
    hits = {known[f] for f in folder_ids if f in known}
    return tuple(f for f in subscribed if f in hits) or subscribed
