"""`pbxsync demo` (what `make demo` runs): exits 0 and its timeline shows every part working."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIME_BOUND_SECONDS = 150  # the AUTOCALL meeting starts ~30 s in; a hung demo must not hang CI


def test_demo_prints_the_timeline_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "plugin.cli", "demo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=DEMO_TIME_BOUND_SECONDS, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    # Users and contacts synced
    assert re.search(r"101 alice@example\.com: contacts \+2, calendar \+\d+ occurrences", out)
    assert "ok: users synced (3 users" in out
    # Bookings made and rejected, with the reasons
    assert re.search(r"scheduled 'Demo: conference call in a few seconds' .* room 8001 AUTOCALL: "
                     r"101 \(host\), 102, 103", out)
    assert "rejected  'Vendor pitch'" in out and "sales@vendor.example is not a PBX user" in out
    assert "not a PBX user, not added: dana@partner.example" in out
    # Each AUTOCALL call and its outcome: the busy phone is retried, nobody is called twice otherwise
    assert "call 101 (Alice Example), attempt 1: answered" in out
    assert "call 102 (Bob Builder), attempt 1: answered" in out
    assert "call 103 (Carol Jürgens), attempt 1: busy" in out
    assert "call 103 (Carol Jürgens), attempt 2: busy" in out
    assert "attempt 2: answered" not in out
    assert "101 (Alice Example) joined room 8001 as host" in out
    assert "102 (Bob Builder) joined room 8001 as guest" in out
    # Progress while waiting for the start
    assert "... waiting for the start:" in out
    # The LDAP phonebook and the caller-ID lookup
    assert "Zoë Müller: +49 30 1234-4711" in out
    assert 'agent -> Asterisk: SET VARIABLE CALLERID(name) "Zoë Müller"' in out
    assert re.search(r"demo passed: \d+ steps ok", out)
    assert "FAILED" not in out
