"""Helpers for the LDAP tests: a known phonebook, a store holding it, a config, a
self-signed certificate. Everything binds to 127.0.0.1 on ephemeral ports."""

from __future__ import annotations

import dataclasses
import datetime
import sqlite3
import subprocess
from pathlib import Path

from pbxsync.sync.config import Config, LdapConfig, UserConfig
from pbxsync.sync.listen import ListenAddress
from pbxsync.sync.secrets import Secret
from pbxsync.sync.store.db import open_store
from tests.support.sample_contacts import SampleContact, write_contacts

BASE_DN = "ou=phonebook,dc=example,dc=com"

# Mailboxes: alice (extension 201) and bob (202) are PBX users; shared@ is a shared address book.
PHONEBOOK: tuple[SampleContact, ...] = (
    SampleContact("alice@example.com", "A1", "Jürgen Müller", "Jürgen", "Müller", "ACME GmbH", "CEO",
                  ("jm@acme.example",), (("business", "030 1234 4711"), ("mobile", "+49 170 1112233"))),
    SampleContact("alice@example.com", "A2", "Bob Smith", "Bob", "Smith", "", "",
                  ("bob@smith.example",), (("mobile", "+49 170 5554711"), ("home", "089 555 0100"))),
    SampleContact("alice@example.com", "A3", "Zoë Mülheim", "Zoë", "Mülheim", "Initech", "Engineer", (),
                  (("business", "+49 (0)40 98765-0"),)),
    SampleContact("bob@example.com", "B1", "Carol King", "Carol", "King", "Globex", "", (),
                  (("business", "+1 212 555 0199"), ("fax", "+1 212 555 0198"))),
    SampleContact("bob@example.com", "B2", "Dieter Miller", "Dieter", "Miller", "", "", (),
                  (("business", "0711/4711000"),)),
    SampleContact("shared@example.com", "S1", "Reception", "", "", "Example AG", "", (),
                  (("business", "4711"),)),
)


async def make_store(path: Path, contacts: tuple[SampleContact, ...] | list[SampleContact] = PHONEBOOK) -> Path:
    store = await open_store(path)
    await store.close()
    conn = sqlite3.connect(path)
    try:
        write_contacts(conn, list(contacts))
    finally:
        conn.close()
    return path


def make_config(db: Path, **ldap: object) -> Config:
    # Anonymous on: most phonebook tests search as a phone without a password (the product's default is off).
    settings = dataclasses.replace(LdapConfig(listen=ListenAddress("127.0.0.1", 0), base_dn=BASE_DN, refresh_seconds=0,
                                              anonymous=True), **ldap)  # type: ignore[arg-type]
    users = [
        UserConfig(extension="201", email=["alice@example.com"], name="Alice",
                   ldap_password=Secret("alice-secret")),
        UserConfig(extension="202", email=["bob@example.com"], name="Bob", ldap_password=Secret("bob-secret")),
    ]
    return Config(database=str(db), users=users, ldap=settings)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (cryptography if installed, else the openssl CLI)."""
    cert, key = directory / "ldap.crt", directory / "ldap.key"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key
