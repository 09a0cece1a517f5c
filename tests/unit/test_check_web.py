"""`pbxsync check` for the portal: TLS files, clear text beyond loopback, the signing key's mode, the port."""

from __future__ import annotations

from pathlib import Path

from pbxsync.plugin.check.local import listeners
from pbxsync.plugin.check.web import check_web
from pbxsync.sync.config import Config, WebConfig
from pbxsync.sync.listen import ListenAddress
from tests.support.ldap_phonebook import self_signed_certificate


def config(tmp_path: Path, **web: object) -> Config:
    return Config(database=str(tmp_path / "pbxsync.db"), web=WebConfig(enabled=True, **web))  # type: ignore[arg-type]


def verdicts(cfg: Config) -> dict[str, str]:
    return {r.name: r.outcome.value for r in check_web(cfg)}


def test_a_portal_that_is_off_is_not_checked(tmp_path: Path) -> None:
    assert check_web(Config(database=str(tmp_path / "pbxsync.db"))) == []


def test_clear_text_beyond_loopback_is_warned_about(tmp_path: Path) -> None:
    assert verdicts(config(tmp_path, listen=ListenAddress("0.0.0.0", 8480)))["web tls"] == "WARN"
    proxied = config(tmp_path, listen=ListenAddress("127.0.0.1", 8480), trusted_proxies=["127.0.0.1"])
    assert "web tls" not in verdicts(proxied)


def test_certificates_that_load_pass_and_others_fail(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    assert verdicts(config(tmp_path, tls_cert=str(cert), tls_key=str(key)))["web tls"] == "PASS"
    assert verdicts(config(tmp_path, tls_cert=str(tmp_path / "none.pem"), tls_key=str(key)))["web tls"] == "FAIL"


def test_a_signing_key_others_can_read_is_warned_about(tmp_path: Path) -> None:
    assert verdicts(config(tmp_path))["web signing key"] == "PASS"  # not made yet
    key = tmp_path / "web-secret.key"
    key.write_text("00" * 32)
    key.chmod(0o644)
    assert verdicts(config(tmp_path))["web signing key"] == "WARN"
    key.chmod(0o600)
    assert verdicts(config(tmp_path))["web signing key"] == "PASS"


def test_the_portals_port_is_checked_with_the_other_listeners(tmp_path: Path) -> None:
    assert ("web.listen", ListenAddress("127.0.0.1", 8480)) in [(x.key, x.address) for x in listeners(config(tmp_path))]
