"""Portal passwords, sessions and one-time sign-in links in the store; `pbxsync passwd`."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from pbxsync.plugin.cli import main
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.web import accounts
from pbxsync.plugin.web.sessions import session_id_hash
from pbxsync.sync.store.db import Store, open_store

pytestmark = pytest.mark.usefixtures("cheap_argon2")
T = TypeVar("T")


def test_passwords_are_hashed_with_argon2id_in_production() -> None:
    assert accounts.PasswordHasher().hash("x").startswith("$argon2id$")


async def test_a_password_is_stored_as_an_argon2id_hash_and_checks(store: Store) -> None:
    now = FakeClock().now()
    await accounts.set_password(store, "102", "correct horse battery", now)
    async with store.conn.execute("SELECT hash FROM web_passwords") as cur:
        (stored,) = await cur.fetchone()  # type: ignore[misc]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert await accounts.check_password(store, "102", "correct horse battery")
    assert not await accounts.check_password(store, "102", "correct horse")
    assert not await accounts.check_password(store, "999", "correct horse battery")


async def test_sessions_are_stored_hashed_and_expire(store: Store) -> None:
    clock = FakeClock()
    session_id, _ = await accounts.open_session(store, "102", clock.now(), timedelta(minutes=5))
    async with store.conn.execute("SELECT id_hash FROM web_sessions") as cur:
        assert [r[0] for r in await cur.fetchall()] == [session_id_hash(session_id)]
    assert await accounts.session_alive(store, session_id, "102", clock.now())
    assert not await accounts.session_alive(store, session_id, "103", clock.now())
    clock.advance(301)
    assert not await accounts.session_alive(store, session_id, "102", clock.now())


async def test_setting_a_password_ends_every_session_of_the_user(store: Store) -> None:
    now = FakeClock().now()
    mine, _ = await accounts.open_session(store, "102", now, timedelta(hours=1))
    other, _ = await accounts.open_session(store, "103", now, timedelta(hours=1))
    await accounts.set_password(store, "102", "a new password!", now)
    assert not await accounts.session_alive(store, mine, "102", now)
    assert await accounts.session_alive(store, other, "103", now)


async def test_a_sign_in_link_works_once_and_expires(store: Store) -> None:
    clock = FakeClock()
    token = await accounts.create_link(store, "102", clock.now())
    assert await accounts.link_extension(store, token, clock.now()) == "102"
    assert await accounts.link_extension(store, token + "x", clock.now()) is None
    assert await accounts.spend_link(store, token, clock.now()) == "102"
    assert await accounts.spend_link(store, token, clock.now()) is None
    assert await accounts.link_extension(store, token, clock.now()) is None
    late = await accounts.create_link(store, "102", clock.now())
    clock.advance(accounts.LINK_HOURS * 3600 + 1)
    assert await accounts.link_extension(store, late, clock.now()) is None
    assert await accounts.spend_link(store, late, clock.now()) is None
    async with store.conn.execute("SELECT token_hash FROM web_signin_links") as cur:
        assert token not in {r[0] for r in await cur.fetchall()}


@pytest.mark.parametrize(("password", "again", "problem"), [
    ("long enough pw", "long enough pw", None), ("long enough pw", "other", "differ"), ("short", "short", "least")])
def test_new_passwords_are_checked_in_words(password: str, again: str, problem: str | None) -> None:
    found = accounts.password_problem(password, again)
    assert (found is None) if problem is None else (found is not None and problem in found)


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "pbxsync.toml"
    config.write_text(f'''database = "{tmp_path / 'pbxsync.db'}"
[exchange]
server = "http://127.0.0.1:1/EWS/Exchange.asmx"
username = "svc"
password = "pw"
[[users]]
extension = "102"
email = "bob@example.com"
[control]
socket = "{tmp_path / 'control.sock'}"
metrics_listen = ""
[web]
enabled = true
listen = "127.0.0.1:8443"
tls_cert = "{tmp_path / 'c.pem'}"
tls_key = "{tmp_path / 'k.pem'}"
allowed_hosts = ["pbx.example.com"]
''', encoding="utf-8")
    return config


def in_store(db: Path, read: Callable[[Store], Awaitable[T]]) -> T:
    """`read` on the database the CLI wrote, opened on its own loop (the CLI test is synchronous)."""
    async def run() -> T:
        store = await open_store(db)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def bobs_hash(store: Store) -> str | None:
    async with store.conn.execute("SELECT hash FROM web_passwords WHERE extension = '102'") as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


def test_passwd_stdin_sets_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long new password\n"))
    assert main(["--config", str(config), "passwd", "102", "--stdin"]) == 0
    assert "password set for 102" in capsys.readouterr().err
    hashed = in_store(tmp_path / "pbxsync.db", bobs_hash)
    assert hashed is not None and hashed.startswith("$argon2id$")


def test_passwd_refuses_a_short_password_and_an_unknown_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", str(config), "passwd", "102", "--stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["--config", str(config), "passwd", "999", "--link"]) == 2
    assert "no user with extension 999" in capsys.readouterr().err


def test_passwd_link_prints_a_one_time_link_on_the_portal_address(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["--config", str(config), "passwd", "102", "--link"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("https://pbx.example.com:8443/link/")
    token = out.out.strip().rsplit("/", 1)[1]
    assert in_store(tmp_path / "pbxsync.db", lambda s: accounts.link_extension(s, token, datetime.now(UTC))) == "102"
    assert main(["--config", str(config), "passwd", "102", "--link", "--url", "https://portal.example/"]) == 0
    assert capsys.readouterr().out.startswith("https://portal.example/link/")
