"""The EWS source: Exchange on-premises through exchangelib (unmodified).

exchangelib is synchronous, so every call runs in a worker thread, behind one asyncio.Semaphore per
mailbox account sized to `exchange.max_connections`, which is also exchangelib's HTTP session pool size.
The threads are the source's own pool (`threads`, from the backend: sync.concurrency x max_connections), not
asyncio's default executor: that one has cpu_count + 4 threads, 6 on a two-core PBX, fewer than the default
8 mailboxes at once, so it silently capped the configured concurrency (found by bench_write_back.py).
Its exceptions never leave this module: `_map_error` turns them into `sync.errors` SourceError subclasses
with one-line messages that name the mailbox and the Exchange error code, never a credential.

Back-off: exchangelib runs with `FailFast`, and this module retries ErrorServerBusy itself, sleeping the
server's BackOffMilliseconds while the total stays within `max_busy_wait_seconds`; beyond that it raises
SourceBusyError(retry_after). We do not use exchangelib's `FaultTolerance` because it also treats HTTP 401
as throttling (a wrong password would look like a busy server for up to max_wait) and retries connection
errors for as long, which would stall one user's pass instead of reporting it.

Over 400 lines on purpose: accounts, autodiscover, the bounded back-off and the folder fetches share one
per-mailbox slot and error mapping; the mappings live in ews_contacts.py, ews_fields.py, ews_groups.py and ews_sync.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    FailFast,
    HTMLBody,
    Version,
)
from exchangelib import errors as ews_errors
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.properties import RecurringMasterItemId
from exchangelib.protocol import BaseProtocol
from exchangelib.services import ResolveNames

from pbxsync.sync.config import ExchangeConfig, UserConfig
from pbxsync.sync.errors import SourceAccessError, SourceAuthError, SourceBusyError, SourceDataError, SourceError
from pbxsync.sync.model import (
    Attendee,
    AttendeeKind,
    CalendarChanges,
    CalendarWindow,
    ContactChanges,
    GroupMembers,
    Occurrence,
    ResponseType,
    Sensitivity,
    SkippedItem,
    is_internal_address,
    show_as_from,
)
from pbxsync.sync.sources.ews_contacts import ContactsReader
from pbxsync.sync.sources.ews_fields import FIELD_NAME as ENHANCED_LOCATION
from pbxsync.sync.sources.ews_fields import SUPPORTED_FROM as ENHANCED_LOCATION_FROM
from pbxsync.sync.sources.ews_fields import lean_attendees
from pbxsync.sync.sources.ews_groups import expand_dl
from pbxsync.sync.sources.ews_sync import FolderChanges, sync_folder_items
from pbxsync.sync.sources.kept_bodies import KeptBodies
from pbxsync.sync.sources.locations import join_locations
from pbxsync.sync.sources.writer import ItemBody

log = logging.getLogger("pbxsync.exchange.ews")
T = TypeVar("T")

OCCURRENCE_FIELDS = ("uid", "subject", "location", "start", "end", "_start_timezone", "_end_timezone",
                     "is_all_day", "is_cancelled", "type", "recurrence_id", "organizer", "required_attendees",
                     "optional_attendees", "resources", "sensitivity", "my_response_type",
                     "legacy_free_busy_status")
MAX_TEXT = 1024  # subjects, names and locations beyond this are cut: they are displayed and dialled, never kept whole
_VERSIONS = {"Exchange2010": Build(14, 0), "Exchange2010_SP1": Build(14, 1), "Exchange2010_SP2": Build(14, 2),
             "Exchange2013": Build(15, 0), "Exchange2016": Build(15, 1), "Exchange2019": Build(15, 2)}
_RESPONSES = {"Unknown": ResponseType.UNKNOWN, "Organizer": ResponseType.ORGANIZER,
              "Tentative": ResponseType.TENTATIVE, "Accept": ResponseType.ACCEPT, "Decline": ResponseType.DECLINE,
              "NoResponseReceived": ResponseType.NO_RESPONSE}
_SENSITIVITIES = {"Normal": Sensitivity.NORMAL, "Personal": Sensitivity.PERSONAL, "Private": Sensitivity.PRIVATE,
                  "Confidential": Sensitivity.CONFIDENTIAL}
_UTC_TZ = EWSTimeZone("UTC")


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """Untrusted Exchange text -> printable, bounded text (control characters become spaces)."""
    if not isinstance(value, str):
        return ""
    cut = value[:limit]
    if cut.isprintable():  # the common case, without a per-character loop
        return cut.strip()
    return "".join(ch if ch.isprintable() else " " for ch in cut).strip()


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _map_error(exc: BaseException, mailbox: str) -> SourceError:
    """Any exchangelib/requests failure -> one SourceError subclass with a one-line, secret-free message."""
    name = type(exc).__name__
    who = f"EWS {mailbox}"
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, ews_errors.UnauthorizedError):
        return SourceAuthError(f"{who}: Exchange refused the credentials (HTTP 401)")
    if isinstance(exc, ews_errors.ErrorNonExistentMailbox):
        return SourceAccessError(f"{who}: the mailbox does not exist on Exchange (ErrorNonExistentMailbox)")
    if isinstance(exc, (ews_errors.ErrorAccessDenied, ews_errors.ErrorImpersonateUserDenied,
                        ews_errors.ErrorImpersonationFailed, ews_errors.ErrorItemNotFound)):
        return SourceAccessError(f"{who}: access denied ({name})")
    if isinstance(exc, ews_errors.RateLimitError):
        return SourceBusyError(f"{who}: Exchange is busy (asked to wait {exc.wait:.0f}s)", float(exc.wait))
    if isinstance(exc, ews_errors.ErrorServerBusy):
        return SourceBusyError(f"{who}: Exchange is busy (ErrorServerBusy)", exc.back_off)
    if isinstance(exc, ews_errors.ErrorInvalidSyncStateData):
        return SourceDataError(f"{who}: Exchange rejected the stored sync state (ErrorInvalidSyncStateData)")
    if isinstance(exc, ews_errors.AutoDiscoverFailed):
        return SourceError(f"{who}: autodiscover failed ({_one_line(str(exc), 120)})")
    if isinstance(exc, ews_errors.ErrorTimeoutExpired | requests.ConnectionError | requests.Timeout |
                  ssl.SSLError | ConnectionError):
        return SourceError(f"{who}: cannot reach Exchange ({name})")
    if isinstance(exc, ews_errors.TransportError) and "certificate" in str(exc).lower():
        return SourceError(f"{who}: TLS certificate not trusted (set exchange.ca_file or fix the server)")
    if isinstance(exc, ews_errors.ResponseMessageError):
        return SourceError(f"{who}: Exchange error {name}")
    if isinstance(exc, ews_errors.TransportError):
        return SourceDataError(f"{who}: unusable response from Exchange ({name})")
    return SourceDataError(f"{who}: unexpected data from Exchange ({name})")


map_error = _map_error  # the writer maps per-item failures the same way


class _CaFileAdapter(requests.adapters.HTTPAdapter):
    """Verifies server certificates against the admin's CA bundle (exchange.ca_file)."""

    ca_file = ""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self.ca_file:
            kwargs["verify"] = self.ca_file
        return super().send(request, *args, **kwargs)


@dataclass
class _Slot:
    account: Account
    semaphore: asyncio.Semaphore


class _Busy(Exception):
    """ErrorServerBusy out of the worker thread, so the back-off is waited for on the event loop."""

    def __init__(self, back_off: float) -> None:
        super().__init__(back_off)
        self.back_off = back_off


class EwsSource:
    """MailboxSource over EWS. One exchangelib Account per mailbox, created on first use and reused."""

    def __init__(self, exchange: ExchangeConfig, users: Sequence[UserConfig], default_region: str = "DE", *,
                 max_busy_wait_seconds: float = 60.0, page_size: int = 200, max_pages: int = 100,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, keep_bodies: bool = False,
                 threads: int = 32) -> None:
        if exchange.auth not in ("basic", "ntlm"):
            raise SourceAuthError(f"EWS: auth = {exchange.auth!r} is not supported over EWS here; "
                                  "use basic or ntlm, or backend = \"graph\" for OAuth")
        self.exchange = exchange
        self.users = {u.mailbox.lower(): u for u in users}
        self.default_region = default_region
        self.max_busy_wait_seconds = max_busy_wait_seconds
        self.page_size = page_size
        self.max_pages = max_pages
        self._sleep = sleep
        self._slots: dict[str, _Slot] = {}
        self._thread_count = max(1, threads)
        self._threads = self._new_pool()
        self._slot_locks: dict[str, asyncio.Lock] = {}
        self._version = Version(build=_VERSIONS.get(exchange.version, Build(15, 1)))
        self.occurrence_fields = OCCURRENCE_FIELDS + (
            (ENHANCED_LOCATION,) if self._version.build >= ENHANCED_LOCATION_FROM else ())
        # keep_bodies (write-back on): the window's GetItem also reads bodies, for the writer (kept_bodies.py)
        self.kept_bodies: KeptBodies | None = KeptBodies() if keep_bodies else None
        if keep_bodies:
            self.occurrence_fields += ("body",)
        self._auth_type = NTLM if exchange.auth == "ntlm" else BASIC
        _configure_tls(exchange)

    # ---- accounts

    def _credentials(self, mailbox: str) -> tuple[Credentials, str]:
        if self.exchange.impersonation:
            return Credentials(self.exchange.username, self.exchange.password.reveal()), IMPERSONATION
        user = self.users.get(mailbox.lower())
        if user is None or not user.username:
            raise SourceAuthError(f"EWS {mailbox}: no credentials configured for this mailbox")
        return Credentials(user.username, user.password.reveal()), DELEGATE

    def _endpoint(self, mailbox: str, credentials: Credentials) -> str:
        if self.exchange.server:
            return self.exchange.server
        if self.exchange.autodiscover_url:
            # SOAP GetUserSettings against the configured autodiscover endpoint (no DNS guessing).
            protocol = AutodiscoverProtocol(config=Configuration(
                service_endpoint=self.exchange.autodiscover_url, credentials=credentials,
                auth_type=self._auth_type, retry_policy=FailFast()))
            try:
                response = protocol.get_user_settings(user=mailbox, settings=["external_ews_url",
                                                                               "auto_discover_smtp_address"])
                if isinstance(response, Exception):
                    raise response
                response.raise_errors()
            finally:
                protocol.close()
            url = response.ews_url
        else:
            from exchangelib.autodiscover import Autodiscovery

            ad_response, protocol = Autodiscovery(email=mailbox, credentials=credentials).discover()
            url = ad_response.ews_url
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise SourceDataError(f"EWS {mailbox}: autodiscover gave no EWS URL")
        return url

    def _make_account(self, mailbox: str) -> Account:
        credentials, access = self._credentials(mailbox)
        config = Configuration(
            service_endpoint=self._endpoint(mailbox, credentials), credentials=credentials,
            version=self._version, auth_type=self._auth_type, retry_policy=FailFast(),
            max_connections=self.exchange.max_connections)
        return Account(primary_smtp_address=mailbox, config=config, autodiscover=False, access_type=access,
                       default_timezone=_UTC_TZ, locale="en_US")

    async def _slot(self, mailbox: str) -> _Slot:
        key = mailbox.lower()
        slot = self._slots.get(key)
        if slot is not None:
            return slot
        lock = self._slot_locks.setdefault(key, asyncio.Lock())
        async with lock:
            slot = self._slots.get(key)
            if slot is None:
                account = await self._call(mailbox, None, self._make_account, mailbox)
                slot = _Slot(account, asyncio.Semaphore(self.exchange.max_connections))
                self._slots[key] = slot
        return slot

    async def _call(self, mailbox: str, slot: _Slot | None, fn: Callable[..., T], *args: Any) -> T:
        """Run one synchronous exchangelib job in a thread, with bounded ErrorServerBusy back-off. The
        back-off waits on the event loop, not in the thread, so stopping the agent cuts it short."""
        def job() -> T:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # exchangelib warns on unknown zones; we handle None
                    return fn(*args)
            except ews_errors.ErrorServerBusy as exc:
                raise _Busy(float(exc.back_off or 1.0)) from None
            except SourceError:
                raise
            except Exception as exc:
                mapped = _map_error(exc, mailbox)
                log.debug("EWS %s: %s (%r)", mailbox, mapped, exc, exc_info=True)
                raise mapped from None

        waited = 0.0
        while True:
            try:
                if slot is None:
                    return await self._in_thread(job)
                async with slot.semaphore:
                    return await self._in_thread(job)
            except _Busy as busy:
                back_off = busy.back_off
                if waited + back_off > self.max_busy_wait_seconds:
                    raise SourceBusyError(
                        f"EWS {mailbox}: Exchange is busy (asked to wait {back_off:.1f}s)", back_off) from None
                log.info("EWS %s: server busy, backing off %.1fs", mailbox, back_off)
                await self._sleep(back_off)
                waited += back_off

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self._thread_count, thread_name_prefix="pbxsync-ews")  # threads start lazily

    async def _in_thread(self, job: Callable[[], T]) -> T:
        """As asyncio.to_thread (context variables included), in the source's own pool."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, contextvars.copy_context().run, job)

    # ---- MailboxSource

    async def sync_contacts(self, mailbox: str, sync_state: str) -> ContactChanges:
        slot = await self._slot(mailbox)
        # Mapping (phone parsing above all) runs in the worker thread, off the event loop.
        reader = ContactsReader(slot.account, self.default_region, self.page_size, self.max_pages)
        return await self._call(mailbox, slot, reader.read, sync_state)

    async def sync_calendar(self, mailbox: str, sync_state: str) -> CalendarChanges:
        if self.kept_bodies is not None:
            self.kept_bodies.forget(mailbox)  # bodies from an earlier pass are never used
        slot = await self._slot(mailbox)
        changes = await self._call(mailbox, slot, self._sync_folder, slot.account, "calendar", sync_state, ())
        changed = tuple(dict.fromkeys(str(i.id) for i in changes.upserts if getattr(i, "id", None)))
        skipped = tuple(SkippedItem("", u.item_id, u.reason) for u in changes.unreadable)
        return CalendarChanges(changed, tuple(dict.fromkeys(changes.deleted)), changes.state, changes.complete,
                               skipped)

    async def calendar_window(self, mailbox: str, start: datetime, end: datetime) -> CalendarWindow:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("calendar_window needs timezone-aware datetimes")
        slot = await self._slot(mailbox)
        return await self._call(mailbox, slot, self._fetch_window, slot.account, start, end)

    def _fetch_window(self, account: Account, start: datetime, end: datetime) -> CalendarWindow:
        with lean_attendees():  # a 500-attendee meeting read in ms, not in 100 ms per copy (ews_fields)
            items, masters = self._view(account, start, end)
        found: dict[str, Occurrence] = {}
        skipped: list[SkippedItem] = []
        read: list[tuple[Occurrence, ItemBody]] = []
        for item in items:
            # An item Exchange returned but we cannot map is skipped and reported, and the planner keeps
            # what is stored for it: it must neither fail the whole calendar nor vanish from the window.
            item_id = str(getattr(item, "id", None) or "")
            try:
                occ = self._occurrence(item, masters)
            except Exception as exc:
                skipped.append(SkippedItem("", item_id, f"cannot map it ({type(exc).__name__})"))
                continue
            if occ is None:
                skipped.append(SkippedItem("", item_id, "no usable id, start or end"))
            else:
                found.setdefault(occ.item_id, occ)  # duplicates: the first one wins
                if self.kept_bodies is not None:
                    read.append((occ, item_body(occ.item_id, item)))
        if self.kept_bodies is not None:
            self.kept_bodies.keep(str(account.primary_smtp_address), read)
        return CalendarWindow(start.astimezone(UTC), end.astimezone(UTC), tuple(found.values()), tuple(skipped))

    async def resolve_address(self, mailbox: str, address: str) -> str | None:
        slot = await self._slot(mailbox)
        return await self._call(mailbox, slot, self._resolve, slot.account, address)

    async def expand_group(self, mailbox: str, address: str, *, max_members: int = 200) -> GroupMembers | None:
        """ExpandDL on `address` (asked as `mailbox`'s account), nested groups expanded in turn."""
        slot = await self._slot(mailbox)
        return await self._call(mailbox, slot, expand_dl, slot.account, address, max_members)

    async def account(self, mailbox: str) -> Account:
        """The mailbox's exchangelib Account, made on first use (autodiscover included). The streaming feed
        (sync.notify.ews_streaming) makes its own sessions from its protocol and never uses the pool's."""
        return (await self._slot(mailbox)).account

    async def run_as(self, mailbox: str, job: Callable[..., T], *args: Any) -> T:
        """`job(account, *args)` for `mailbox`'s account in a worker thread, behind its semaphore and with the
        same back-off and error mapping as the reads (for the writers: sync.sources.mail)."""
        slot = await self._slot(mailbox)
        return await self._call(mailbox, slot, job, slot.account, *args)

    def endpoint_for(self, mailbox: str) -> str:
        """The EWS URL in use for `mailbox`: `[exchange] server`, else what autodiscover found when the
        mailbox was first used; "" while autodiscover has not run for it yet."""
        slot = self._slots.get(mailbox.lower())
        if slot is not None:
            return str(slot.account.protocol.service_endpoint)
        return self.exchange.server

    async def close(self) -> None:
        slots, self._slots = list(self._slots.values()), {}
        for slot in slots:
            await self._in_thread(slot.account.protocol.close)
        done, self._threads = self._threads, self._new_pool()  # a closed source may be used again, as before
        done.shutdown(wait=False)

    # ---- synchronous exchangelib work (runs in threads)

    def _sync_folder(self, account: Account, which: str, sync_state: str, fields: Iterable[str]) -> FolderChanges:
        folder = account.contacts if which == "contacts" else account.calendar
        additional = {f for f in folder.normalize_fields(fields=list(fields)) if not f.field.is_attribute}
        return sync_folder_items(account, folder, sync_state, additional, self.page_size, self.max_pages)

    def _view(self, account: Account, start: datetime, end: datetime) -> tuple[list[Any], dict[str, str]]:
        view = account.calendar.view(start=EWSDateTime.from_datetime(start.astimezone(UTC)).astimezone(_UTC_TZ),
                                     end=EWSDateTime.from_datetime(end.astimezone(UTC)).astimezone(_UTC_TZ))
        items = list(view.only(*self.occurrence_fields))
        for item in items:
            # The window is only worth anything complete: the engine deletes what it no longer holds,
            # so one item Exchange failed to return must fail the fetch, not vanish from it.
            if isinstance(item, Exception):
                raise item
        # One GetItem for all series masters in the window: occurrence -> its master's ItemId. Occurrences
        # are grouped by UID; one without a UID (a series copied with "Copy to My Calendar") asks alone.
        firsts: dict[str, Any] = {}
        for item in items:
            if item.type in ("Occurrence", "Exception"):
                firsts.setdefault(_series_key(item), item)
        masters: dict[str, str] = {}
        if firsts:
            keys = list(firsts)
            ids = [RecurringMasterItemId(id=i.id, changekey=i.changekey) for i in firsts.values()]
            for key, master in zip(keys, account.fetch(ids=ids, only_fields=["uid"]), strict=False):
                if not isinstance(master, Exception) and getattr(master, "id", None):
                    masters[key] = str(master.id)
        return items, masters

    def _resolve(self, account: Account, address: str) -> str | None:
        try:
            results = list(ResolveNames(protocol=account.protocol).call(
                unresolved_entries=[address], parent_folders=None, return_full_contact_data=False,
                search_scope=None, contact_data_shape=None))
        except ews_errors.ErrorNameResolutionNoResults:
            return None
        for result in results:
            if isinstance(result, ews_errors.ErrorNameResolutionNoResults):
                return None
            if isinstance(result, Exception):
                raise result
            email = getattr(result, "email_address", None)
            if isinstance(email, str) and email.strip() and not is_internal_address(email):
                return email.lower()
        return None

    # ---- mapping exchangelib objects to sync.model

    def _occurrence(self, item: Any, masters: dict[str, str]) -> Occurrence | None:
        # EWS sends Start/End as UTC instants, so a custom TimeZoneDefinition or an id exchangelib does
        # not know (it gives None then) changes no time; only the zone's label falls back to "UTC".
        tz = item._start_timezone
        zone_id = getattr(tz, "ms_id", None) or getattr(tz, "key", None) or "UTC"
        try:
            start, end = _instant(item.start, tz, False), _instant(item.end, tz, item.is_all_day)
        except (TypeError, ValueError):
            log.warning("EWS: skipping calendar item with unusable start/end")
            return None
        if start is None or end is None or not getattr(item, "id", None):
            return None
        organizer = item.organizer
        attendees: list[Attendee] = []
        for kind, group in ((AttendeeKind.REQUIRED, item.required_attendees),
                            (AttendeeKind.OPTIONAL, item.optional_attendees),
                            (AttendeeKind.RESOURCE, item.resources)):
            for att in group or ():
                box = att.mailbox
                attendees.append(Attendee(
                    email=clean_text(getattr(box, "email_address", ""), 320).lower(),
                    name=clean_text(getattr(box, "name", "")), kind=kind,
                    response=_RESPONSES.get(att.response_type or "", ResponseType.UNKNOWN)))
        recurrence_id = _instant(item.recurrence_id, tz, False) if item.recurrence_id else None
        uid = clean_text(item.uid, 2048)
        enhanced = getattr(item, ENHANCED_LOCATION, None)
        return Occurrence(
            item_id=str(item.id), change_key=str(item.changekey or ""), uid=uid, start=start, end=end,
            timezone=clean_text(zone_id, 128) or "UTC", recurrence_id=recurrence_id,
            series_item_id=masters.get(_series_key(item), "") if item.type in ("Occurrence", "Exception") else "",
            subject=clean_text(item.subject),
            location=join_locations(clean_text(item.location), [clean_text(getattr(enhanced, "display_name", ""))]),
            organizer_email=clean_text(getattr(organizer, "email_address", ""), 320).lower(),
            organizer_name=clean_text(getattr(organizer, "name", "")),
            attendees=tuple(attendees), is_cancelled=bool(item.is_cancelled), is_all_day=bool(item.is_all_day),
            sensitivity=_sensitivity(getattr(item, "sensitivity", None)),
            my_response=_RESPONSES.get(getattr(item, "my_response_type", None) or "", ResponseType.UNKNOWN),
            show_as=show_as_from(getattr(item, "legacy_free_busy_status", None)))


def item_body(item_id: str, item: Any) -> ItemBody:
    """An exchangelib item's body with its ChangeKey (no body at all counts as an empty HTML one)."""
    body = item.body
    return ItemBody(item_id, str(item.changekey or ""), str(body or ""), isinstance(body, HTMLBody) or body is None)


def _sensitivity(value: object) -> Sensitivity:
    """An unknown value counts as private: a level Exchange may add later is hardly a more public one."""
    if not value:
        return Sensitivity.NORMAL
    return _SENSITIVITIES.get(str(value), Sensitivity.PRIVATE)


def _series_key(item: Any) -> str:
    """Which series an occurrence belongs to: its UID, or (no UID) the occurrence itself."""
    return f"uid:{item.uid}" if item.uid else f"item:{item.id}"


def _instant(value: Any, tz: Any, is_end_of_all_day: bool) -> datetime | None:
    """exchangelib start/end -> aware UTC. All-day values come as dates (end inclusive, in the meeting zone)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime from Exchange")
        return datetime.fromtimestamp(value.timestamp(), UTC)  # EWSDateTime refuses a stdlib tz
    if isinstance(value, date):
        zone = ZoneInfo(tz.key) if tz is not None and getattr(tz, "key", None) else UTC
        day = value + timedelta(days=1) if is_end_of_all_day else value
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    raise TypeError(type(value).__name__)


def _configure_tls(exchange: ExchangeConfig) -> None:
    """exchangelib takes its HTTP adapter class process-wide; pick it from this config."""
    from exchangelib.protocol import NoVerifyHTTPAdapter

    if not exchange.verify_tls:
        log.warning("exchange.verify_tls = false: TLS certificates of Exchange are NOT verified")
        BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
    elif exchange.ca_file:
        _CaFileAdapter.ca_file = exchange.ca_file
        BaseProtocol.HTTP_ADAPTER_CLS = _CaFileAdapter
    else:
        BaseProtocol.HTTP_ADAPTER_CLS = requests.adapters.HTTPAdapter
