from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbxsync.plugin.autocall.dialplan import DialplanNames, render
from pbxsync.plugin.cli import main
from pbxsync.sync.errors import ValidationError

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"


def test_shipped_files_are_the_default_rendering() -> None:
    for name, text in render().items():
        assert (DIALPLAN / name).read_text(encoding="utf-8") == text, name


def test_every_pbxsync_variable_is_read_through_filter() -> None:
    text = render()["pbxsync-autocall.conf"]
    reads = re.findall(r"\$\{(PBXSYNC_ROOM|PBXSYNC_ROLE|PBXSYNC_CONFIRM|PBXSYNC_KEY)\}", text)
    assert sorted(set(reads)) == ["PBXSYNC_CONFIRM", "PBXSYNC_KEY", "PBXSYNC_ROLE", "PBXSYNC_ROOM"]
    for var in set(reads):
        for use in re.finditer(r"\$\{" + var + r"\}", text):
            before = text[max(0, use.start() - 30):use.start()]
            assert "FILTER(" in before, var


def test_manager_user_is_least_privilege_and_has_no_secret() -> None:
    text = render(DialplanNames(username="pbx-agent", permit="10.0.0.5"))["pbxsync-manager.conf"]
    assert "[pbx-agent]" in text and "permit = 10.0.0.5/255.255.255.255" in text
    assert "read = call,system\n" in text and "write = originate,call,reporting\n" in text
    assert "secret = CHANGE-ME" in text


@pytest.mark.parametrize("bad", ["a b", "x]\n[evil", "", "x;y"])
def test_names_are_checked(bad: str) -> None:
    with pytest.raises(ValidationError):
        render(DialplanNames(context=bad))


def test_cli_prints_files_for_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pbxsync.toml"
    config.write_text('database = "%s"\n[exchange]\nusername = "svc"\n[pbx]\ncontext = "meet-call"\n'
                      'username = "agent7"\nsecret = "hidden-value"\n' % (tmp_path / "db.sqlite"))
    assert main(["-c", str(config), "dialplan"]) == 0
    out = capsys.readouterr().out
    assert "[meet-call]" in out and "[agent7]" in out and "hidden-value" not in out
    assert main(["-c", str(config), "dialplan", "--write", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "pbxsync-autocall.conf").read_text().count("[meet-call") == 2


def test_fastagi_dialplan_is_printed_with_the_configured_address(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pbxsync.toml"
    config.write_text('database = "%s"\n[exchange]\nusername = "svc"\n[agi]\nlisten = "0.0.0.0:4600"\n'
                      % (tmp_path / "db.sqlite"))
    assert main(["-c", str(config), "dialplan"]) == 0
    out = capsys.readouterr().out
    assert ";; ===== pbxsync-agi.conf =====" in out and "[pbxsync-callerid]" in out and "[pbxsync-room]" in out
    assert "Set(LOCAL(pbxsync_agi)=127.0.0.1:4600)" in out and "Set(PBXSYNC_AGI_ADDR=127.0.0.1:4600)" in out
    assert "4573)" not in out


def test_a_hostile_agi_address_is_refused() -> None:
    with pytest.raises(ValidationError):
        render(DialplanNames(agi_address="127.0.0.1:4573)\nexten => s,1,System(rm)"))
