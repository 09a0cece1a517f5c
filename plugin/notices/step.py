"""After the bookings are reconciled: record the notices due (plugin/notices/plan.py) and send them.

Runs after each sync pass in the daemon (plugin/daemon/wiring.py) and after `pbxsync sync --local`, only
with `[meetings] notify_organizer = true`. Sending goes through the sync's own Exchange connection
(sync.sources.mail); a failed send is recorded and retried with back-off on a later pass, never in a loop
here, so one unreachable mailbox cannot hold up the passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pbxsync.plugin.booking.model import Booking
from pbxsync.plugin.booking.store import list_bookings
from pbxsync.plugin.notices.plan import NoticeRow, NoticeState, after_failure, due, plan_notices
from pbxsync.plugin.notices.store import apply_plan, claim, load_booked, load_rows, record_failure, record_sent
from pbxsync.plugin.notices.texts import NoticeFacts, NoticeTemplates, one_line
from pbxsync.sync.config import Config
from pbxsync.sync.errors import SourceError
from pbxsync.sync.sources.mail import MailSender, OutgoingMail
from pbxsync.sync.store.db import Store

log = logging.getLogger("pbxsync.notices")


@dataclass(frozen=True)
class NoticeSummary:
    planned: int = 0
    sent: int = 0
    failed: int = 0


class NoticeStep:
    """One per config: its templates are read once, when it is made (a missing one fails at start)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        meetings = config.meetings
        self.users = {u.extension: u for u in config.users}
        self.language = {u.mailbox: u.notices_language or meetings.notices_language for u in config.users}
        self.templates = {language: NoticeTemplates(language, meetings.notices_templates)
                          for language in {meetings.notices_language, *self.language.values()}}
        self._said_no_sender = False

    def _mail(self, booking: Booking, row: NoticeRow, recipient: str) -> OutgoingMail:
        draft = booking.draft
        user = self.users.get(draft.organizer_extension or "")
        facts = NoticeFacts(name=user.name if user and user.name else recipient, subject=draft.subject,
                            start=draft.start, end=draft.end, timezone=draft.timezone, reason=draft.reason or "")
        text = self.templates[self.language.get(recipient, self.config.meetings.notices_language)].render(
            row.reason, facts)
        sender = self.config.meetings.notices_from
        return OutgoingMail(sender=recipient if sender == "organizer" else sender, to=recipient,
                            subject=text.subject, body=text.body)

    async def run(self, store: Store, now: datetime, sender: MailSender | None) -> NoticeSummary:
        bookings = {b.id: b for b in await list_bookings(store, now)}
        rows = await load_rows(store, bookings)
        recipients = {ext: u.mailbox for ext, u in self.users.items()}
        plan = plan_notices(bookings.values(), [r for r, _ in rows.values()], await load_booked(store),
                            recipients, now)
        await apply_plan(store, plan, self.language, now)
        if plan.create:
            log.info("notices: %d new notice(s) to organizers", len(plan.create))
        if sender is None:
            if not self._said_no_sender:
                log.warning("notices: this Exchange backend cannot send mail; notices stay pending")
                self._said_no_sender = True
            return NoticeSummary(planned=len(plan.create))
        sent = failed = 0
        current = await load_rows(store, ())  # every pending one, new ones included
        for row in due([r for r, _ in current.values()], now):
            booking = bookings.get(row.booking_id)
            if booking is None or not await claim(store, row.id, row.attempts):
                continue
            recipient = current[row.id][1]
            try:
                await sender.send_mail(self._mail(booking, row, recipient))
            except (SourceError, ValueError) as exc:
                failed += 1
                state, next_attempt = after_failure(row, now)
                error = one_line(str(exc), 300) or type(exc).__name__
                await record_failure(store, row.id, state, next_attempt, error)
                log.warning("notices: sending the %s notice of booking %d to %s failed (%s); %s", row.reason,
                            row.booking_id, recipient, error, "giving up" if state is NoticeState.ABANDONED
                            else f"retrying after {next_attempt:%H:%M} UTC")
                continue
            sent += 1
            await record_sent(store, row.id, now)
            log.info("notices: sent the %s notice of booking %d to %s", row.reason, row.booking_id, recipient)
        return NoticeSummary(planned=len(plan.create), sent=sent, failed=failed)
