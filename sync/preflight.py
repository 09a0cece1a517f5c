"""One preflight result (`pbxsync check`), and how results print.

Plain data, so the Exchange backends in sync/sources can declare checks of their own without importing
the PBX side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not checked because something it depends on failed; counts as not passed
    WARN = "WARN"  # works, but should be fixed (e.g. a secret file others can read); counts as passed


@dataclass(frozen=True)
class CheckResult:
    name: str  # "ami login", "mailbox alice@example.com (101)"
    outcome: Outcome
    detail: str  # what was found, one line
    fix: str = ""  # for FAIL/SKIP: what the admin should do, concretely

    @property
    def passed(self) -> bool:
        return self.outcome in (Outcome.PASS, Outcome.WARN)

    def line(self) -> str:
        text = f"{self.outcome.value}  {self.name}: {one_line(self.detail)}"
        if self.fix and self.outcome is not Outcome.PASS:
            text += f" -- fix: {one_line(self.fix)}"
        return text

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["outcome"] = self.outcome.value
        doc["passed"] = self.passed
        return doc


def one_line(text: str) -> str:
    return " ".join(text.split())


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Outcome.PASS, detail)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Outcome.FAIL, detail, fix)


def warned(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Outcome.WARN, detail, fix)


def skipped(name: str, because: str, fix: str) -> CheckResult:
    return CheckResult(name, Outcome.SKIP, f"not checked: {because}", fix)
