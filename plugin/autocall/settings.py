"""AUTOCALL's settings, from `[pbx]` and `[autocall]` (see docs/autocall.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pbxsync.plugin.autocall.planner import PlannerSettings
from pbxsync.sync.config import Config


@dataclass(frozen=True)
class AutocallSettings:
    dial_template: str = "PJSIP/{extension}"
    context: str = "pbxsync-autocall"
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    pacing_per_second: float = 0.0
    confirm: bool = False
    end_conference_on_cancel: bool = False
    verify_before: timedelta = timedelta(0)  # 0: no sync pass of the booking's mailboxes before its start
    reconnect_wait: float = 5.0  # how long a due call waits for the AMI link before planning again

    @classmethod
    def from_config(cls, config: Config) -> AutocallSettings:
        a = config.autocall
        return cls(dial_template=config.pbx.dial, context=config.pbx.context,
                   planner=PlannerSettings(retries=a.retries, retry_delay=timedelta(seconds=a.retry_delay_seconds),
                                           grace=timedelta(minutes=a.grace_minutes),
                                           ring_timeout=timedelta(seconds=a.ring_timeout_seconds)),
                   pacing_per_second=a.pacing_per_second, confirm=a.confirm,
                   end_conference_on_cancel=a.end_conference_on_cancel,
                   verify_before=timedelta(seconds=a.verify_before_seconds))
