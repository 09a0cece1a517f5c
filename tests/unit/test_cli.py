"""The command line: a truthful --help, and one clear line (no traceback) for an operator's mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbxsync.plugin.cli import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_every_command_in_the_readme_exists_and_every_command_is_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `pbxsync (\w+)", README.read_text(encoding="utf-8"), flags=re.M))
    assert documented == subcommands()


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"pbxsync {command}" in capsys.readouterr().out


def test_a_missing_config_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "missing.toml"), "users"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pbxsync: ") and "config file not found" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_an_invalid_config_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[exchange]\nauth = "kerberos"\n[[users]]\nextension = "1 2"\nemail = "x"\n')
    assert main(["--config", str(cfg), "contacts"]) == 2
    err = capsys.readouterr().err
    assert "exchange.auth" in err and "users[0].extension" in err and "users[0].email[0]" in err
    assert "Traceback" not in err


def test_an_unknown_extension_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text(f'database = "{tmp_path}/db.sqlite"\n[exchange]\nusername = "svc@example.com"\n'
                   'password = "pw"\n[[users]]\nextension = "101"\nemail = "alice@example.com"\n')
    assert main(["--config", str(cfg), "sync", "--local", "--user", "999"]) == 2
    assert "no user with extension 999" in capsys.readouterr().err


def test_revoking_phonebook_tokens_of_an_unknown_extension_is_a_user_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text(f'database = "{tmp_path}/db.sqlite"\n[exchange]\nusername = "svc@example.com"\n'
                   'password = "pw"\n[[users]]\nextension = "101"\nemail = "alice@example.com"\n')
    assert main(["--config", str(cfg), "phonebook", "revoke", "999"]) == 2
    err = capsys.readouterr().err
    assert "no [[users]] entry with extension '999'" in err and "Traceback" not in err
    assert main(["--config", str(cfg), "phonebook", "revoke", "101"]) == 0
    assert "0 token(s) of extension 101 revoked" in capsys.readouterr().out
