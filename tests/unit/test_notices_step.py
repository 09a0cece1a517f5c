"""The notices step over a real SQLite store (plugin/notices/step.py, store.py): never twice, even across a
restart; a failed send recorded, retried after its back-off; `pbxsync conferences` shows the state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbxsync.plugin.booking.model import ActionKind, BookingAction, StoredState
from pbxsync.plugin.booking.store import apply_actions
from pbxsync.plugin.commands.conferences import show_conferences
from pbxsync.plugin.notices.step import NoticeStep
from pbxsync.plugin.notices.store import notices_of
from pbxsync.sync.config import Config, MeetingsConfig, UserConfig
from pbxsync.sync.errors import SourceBusyError
from pbxsync.sync.sources.mail import OutgoingMail
from pbxsync.sync.store.db import Store, open_store
from tests.support.notices import CONFLICT, booking

NOW = datetime.now(UTC).replace(microsecond=0)
ALICE = "alice@example.com"


class Sender:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[OutgoingMail] = []
        self.failures = failures

    async def send_mail(self, mail: OutgoingMail) -> None:
        if self.failures:
            self.failures -= 1
            raise SourceBusyError("EWS alice@example.com: Exchange is busy (ErrorServerBusy)", 5.0)
        self.sent.append(mail)


def config(tmp_path: Path, notices_from: str = "organizer") -> Config:
    return Config(database=str(tmp_path / "pbxsync.db"),
                  users=[UserConfig("101", [ALICE], name="Alice Example", room="8001")],
                  meetings=MeetingsConfig(notify_organizer=True, notices_from=notices_from))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(tmp_path / "pbxsync.db")
    yield opened
    await opened.close()


async def store_rejected(store: Store) -> int:
    draft = booking(start=NOW + timedelta(days=1)).draft
    [booking_id] = await apply_actions(store, [BookingAction(ActionKind.REJECT, None, draft, ("rejected",))], NOW)
    return booking_id


async def test_one_notice_from_the_organizers_mailbox_and_never_twice_across_a_restart(
        tmp_path: Path, store: Store) -> None:
    await store_rejected(store)
    sender = Sender()
    await NoticeStep(config(tmp_path)).run(store, NOW, sender)
    await NoticeStep(config(tmp_path)).run(store, NOW, sender)
    await store.close()
    reopened = await open_store(tmp_path / "pbxsync.db")
    try:
        await NoticeStep(config(tmp_path)).run(reopened, NOW + timedelta(minutes=5), sender)
    finally:
        await reopened.close()
    [mail] = sender.sent
    assert (mail.sender, mail.to) == (ALICE, ALICE)
    assert mail.subject == 'No PBX conference for "Weekly"'


async def test_a_configured_sender_mailbox_sends_instead(tmp_path: Path, store: Store) -> None:
    await store_rejected(store)
    sender = Sender()
    await NoticeStep(config(tmp_path, "pbx-notices@example.com")).run(store, NOW, sender)
    assert [(m.sender, m.to) for m in sender.sent] == [("pbx-notices@example.com", ALICE)]


async def test_a_failed_send_waits_its_back_off_then_goes_once(tmp_path: Path, store: Store) -> None:
    booking_id = await store_rejected(store)
    sender = Sender(failures=1)
    step = NoticeStep(config(tmp_path))
    summary = await step.run(store, NOW, sender)
    assert (summary.planned, summary.sent, summary.failed) == (1, 0, 1)
    [notice] = (await notices_of(store, [booking_id]))[booking_id]
    assert (notice.state.value, notice.attempts) == ("pending", 1)
    assert notice.last_error is not None and "busy" in notice.last_error
    shown = await show_conferences(str(tmp_path / "pbxsync.db"), False, False, NOW)
    assert "notice rejected:no_room: pending (1 attempt(s)): EWS alice@example.com: Exchange is busy" in shown
    await step.run(store, NOW + timedelta(seconds=30), sender)  # within the back-off: not yet
    assert sender.sent == []
    await step.run(store, NOW + timedelta(minutes=2), sender)
    await step.run(store, NOW + timedelta(minutes=10), sender)
    assert len(sender.sent) == 1
    [notice] = (await notices_of(store, [booking_id]))[booking_id]
    assert (notice.state.value, notice.attempts, notice.last_error) == ("sent", 2, None)


async def test_a_pending_notice_is_not_sent_once_the_meeting_is_booked_again(tmp_path: Path, store: Store) -> None:
    booking_id = await store_rejected(store)
    step = NoticeStep(config(tmp_path))
    await step.run(store, NOW, None)  # no sender (a backend that cannot send): recorded, pending
    booked = booking(booking_id, StoredState.SCHEDULED, None, start=NOW + timedelta(days=1)).draft
    await apply_actions(store, [BookingAction(ActionKind.UPDATE, booking_id, booked, ("booked",))], NOW)
    sender = Sender()
    await step.run(store, NOW, sender)
    assert sender.sent == []
    [notice] = (await notices_of(store, [booking_id]))[booking_id]
    assert notice.state.value == "obsolete"
    # ... and when pbxsync takes that booking back, the organizer hears of the cancellation
    rejected = booking(booking_id, StoredState.REJECTED, CONFLICT, start=NOW + timedelta(days=1)).draft
    await apply_actions(store, [BookingAction(ActionKind.REJECT, booking_id, rejected, ("rejected",))], NOW)
    await step.run(store, NOW, sender)
    assert [m.subject for m in sender.sent] == ['PBX conference cancelled for "Weekly"']


async def test_the_daemon_runs_the_step_after_the_bookings_only_when_switched_on(tmp_path: Path, store: Store) -> None:
    from pbxsync.plugin.daemon import wiring
    from pbxsync.plugin.daemon.clock import FakeClock
    from pbxsync.sync.engine import PassSummary

    booking_id = await store_rejected(store)
    off = Config(database=str(tmp_path / "pbxsync.db"))
    ctx = wiring.DaemonContext(off, store, FakeClock(NOW), None, lambda _c: None)  # type: ignore[arg-type]
    assert wiring._notices(ctx) == [] and ctx.after_pass == []
    ctx.config = config(tmp_path)
    assert wiring.PARTS.index(wiring._notices) == wiring.PARTS.index(wiring._bookings) + 1
    assert wiring._notices(ctx) == []
    [hook] = ctx.after_pass
    await hook(PassSummary(NOW))  # no sync service yet: nothing can send, the notice waits
    [notice] = (await notices_of(store, [booking_id]))[booking_id]
    assert notice.state.value == "pending"


def test_a_missing_template_shows_as_a_broken_part(tmp_path: Path) -> None:
    from pbxsync.plugin.daemon import wiring
    from pbxsync.plugin.daemon.clock import FakeClock

    cfg = config(tmp_path)
    cfg = Config(database=cfg.database, users=cfg.users, meetings=MeetingsConfig(notify_organizer=True,
                                                                                  notices_language="fr"))
    ctx = wiring.DaemonContext(cfg, None, FakeClock(NOW), None, lambda _c: None)  # type: ignore[arg-type]
    specs = [s for s in wiring.build_specs(ctx) if s.name == "notices"]
    assert len(specs) == 1 and "rejected.fr.txt" in str(specs[0].settings)


async def test_a_user_may_read_notices_in_a_language_of_their_own(tmp_path: Path, store: Store) -> None:
    await store_rejected(store)
    german = Config(database=str(tmp_path / "pbxsync.db"),
                    users=[UserConfig("101", [ALICE], name="Alice Example", room="8001", notices_language="de")],
                    meetings=MeetingsConfig(notify_organizer=True))
    sender = Sender()
    await NoticeStep(german).run(store, NOW, sender)
    assert [m.subject for m in sender.sent] == ["Keine Telefonkonferenz für „Weekly“"]
    async with store.conn.execute("SELECT language FROM organizer_notices") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["de"]
