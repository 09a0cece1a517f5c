"""[phonebook]: off by default, its rules, the wiring, and `pbxsync phonebook token` URLs."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

from pbxsync.plugin.check.local import listeners
from pbxsync.plugin.commands.phonebook import base_url
from pbxsync.plugin.daemon.service import Slot
from pbxsync.plugin.daemon.wiring import _phonebook
from pbxsync.plugin.phonebook.refresh import Refresh
from pbxsync.sync.config import parse_config
from pbxsync.sync.errors import ConfigError, UserError
from pbxsync.sync.listen import ListenAddress

MINIMAL: dict[str, Any] = {
    "exchange": {"username": "svc@example.com", "password": "pw"},
    "users": [{"extension": "201", "email": "alice@example.com"}],
}


def problems(**phonebook: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "phonebook": phonebook})
    return caught.value.problems


def test_off_by_default_and_national_numbers_without_a_prefix() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.phonebook.listen is None and not cfg.phonebook.anonymous
    assert (cfg.phonebook.number_format, cfg.phonebook.dial_prefix) == ("national", "")
    cfg = parse_config({**MINIMAL, "phonebook": {"listen": "0.0.0.0:8089", "dial_prefix": "0"}})
    assert cfg.phonebook.listen == ListenAddress("0.0.0.0", 8089)


def test_rules() -> None:
    assert problems(number_format="local") == [
        'phonebook.number_format: must be "national", "international" or "e164", got \'local\'']
    assert problems(dial_prefix="0;1") == ["phonebook.dial_prefix: at most 8 of 0-9, * and #"]
    assert problems(number_format="e164", dial_prefix="0")[0].startswith("phonebook.dial_prefix: a prefix before")
    assert problems(tls_cert="/x.crt") == ["phonebook.tls_cert/tls_key: give both or neither"]
    assert problems(cache_mb=-1) == ["phonebook.refresh_seconds/cache_mb: must not be negative"]


def test_the_daemon_runs_it_only_with_a_listen_address() -> None:
    class Ctx:
        config = parse_config(MINIMAL)
        store = None
        after_pass: ClassVar[list[object]] = []
        phonebook: Slot[Refresh] = Slot()

    assert _phonebook(Ctx()) == []  # type: ignore[arg-type]
    assert Ctx.after_pass == []
    Ctx.config = parse_config({**MINIMAL, "phonebook": {"listen": "127.0.0.1:8089"}})
    (spec,) = _phonebook(Ctx())  # type: ignore[arg-type]
    assert (spec.name, spec.binds) == ("phonebook", ("127.0.0.1:8089",))
    assert len(Ctx.after_pass) == 1  # the books are re-read right after a pass (test_phonebook_refresh)


def test_check_looks_at_its_port() -> None:
    assert "phonebook.listen" not in [item.key for item in listeners(parse_config(MINIMAL))]
    cfg = parse_config({**MINIMAL, "phonebook": {"listen": "127.0.0.1:8089"}})
    assert ("phonebook.listen", ListenAddress("127.0.0.1", 8089)) in [(i.key, i.address) for i in listeners(cfg)]


def test_token_urls_name_the_address_phones_use() -> None:
    cfg = parse_config({**MINIMAL, "phonebook": {"listen": "192.0.2.10:8089"}})
    assert base_url(cfg, None) == "http://192.0.2.10:8089"
    assert base_url(cfg, "https://pbx.example.com:8443/") == "https://pbx.example.com:8443"
    v6 = dataclasses.replace(cfg, phonebook=dataclasses.replace(cfg.phonebook, listen=ListenAddress("::1", 8089),
                                                                tls_cert="c", tls_key="k"))
    assert base_url(v6, None) == "https://[::1]:8089"
    with pytest.raises(UserError):
        base_url(parse_config(MINIMAL), None)
