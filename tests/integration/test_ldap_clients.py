"""The phonebook against real LDAP clients: OpenLDAP's `ldapsearch` and the ldap3 Python client.

Each vendor's default/recommended filters are replayed with `%` replaced the way the phone does. A test
FAILS (never skips) when ldapsearch is missing: CI installs ldap-utils (scripts/setup-system-deps.sh).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.core.exceptions import LDAPSocketOpenError

from pbxsync.plugin.ldap import LdapServer
from pbxsync.sync.listen import ListenAddress
from tests.support.ldap_phonebook import BASE_DN, make_config, make_store, self_signed_certificate

Start = Callable[..., Awaitable[LdapServer]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    db = await make_store(tmp_path / "pbxsync.db")
    servers: list[LdapServer] = []

    async def _start(**ldap: Any) -> LdapServer:
        server = LdapServer(make_config(db, **ldap), db)
        await server.start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.stop()


def url(server: LdapServer) -> str:
    host, port = server.addresses[0]
    return f"ldap://{host}:{port}"


def parse_ldif(text: str) -> list[dict[str, list[str]]]:
    entries: list[dict[str, list[str]]] = []
    for block in text.strip().split("\n\n"):
        entry: dict[str, list[str]] = {}
        for line in block.splitlines():
            if not line or line.startswith("#") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            value = base64.b64decode(value[1:].strip()).decode("utf-8") if value.startswith(":") else value.strip()
            entry.setdefault(name.lower(), []).append(value)
        if entry:
            entries.append(entry)
    return entries


async def ldapsearch(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, list[str]]], str]:
    exe = shutil.which("ldapsearch")
    assert exe, "ldapsearch is missing: install Debian ldap-utils (scripts/setup-system-deps.sh)"
    proc = await asyncio.create_subprocess_exec(
        exe, "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, parse_ldif(out.decode()), err.decode()


def names(entries: list[dict[str, list[str]]]) -> set[str]:
    return {e["cn"][0] for e in entries if "cn" in e}


# ---- the must-show --------------------------------------------------------------------------------

async def test_must_show_ldapsearch_name_or_number_contains(start: Start) -> None:
    server = await start()
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN,
                                          "(|(cn=*mül*)(telephoneNumber=*4711*))", "-z", "50")
    assert code == 0, err
    assert names(entries) == {"Jürgen Müller", "Zoë Mülheim", "Dieter Miller", "Reception"}
    mueller = next(e for e in entries if e["cn"] == ["Jürgen Müller"])
    assert mueller["objectclass"] == ["top", "person", "organizationalPerson", "inetOrgPerson"]
    assert mueller["sn"] == ["Müller"] and mueller["givenname"] == ["Jürgen"]
    assert mueller["telephonenumber"] == ["030 1234 4711"] and mueller["mobile"] == ["+49 170 1112233"]
    assert mueller["o"] == ["ACME GmbH"] and mueller["title"] == ["CEO"] and mueller["mail"] == ["jm@acme.example"]
    assert mueller["dn"][0].endswith("," + BASE_DN)


async def test_ldapsearch_dns_are_stable_across_restarts(start: Start) -> None:
    first = await start()
    _, before, _ = await ldapsearch("-x", "-H", url(first), "-b", BASE_DN, "(sn=müller)", "dn")
    await first.stop()
    second = await start()
    _, after, _ = await ldapsearch("-x", "-H", url(second), "-b", BASE_DN, "(sn=müller)", "dn")
    assert before == after and len(before) == 1


async def test_ldapsearch_size_limit_returns_code_4(start: Start) -> None:
    server = await start()
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN, "(objectClass=person)",
                                          "-z", "2", "cn")
    assert code == 4, err
    assert len(entries) == 2
    assert "Size limit exceeded" in err


async def test_server_side_size_cap(start: Start) -> None:
    server = await start(size_limit=3)
    code, entries, _ = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN, "(objectClass=person)", "cn")
    assert code == 4 and len(entries) == 3


async def test_root_dse_advertises_what_is_implemented(start: Start) -> None:
    server = await start()
    code, entries, _ = await ldapsearch("-x", "-H", url(server), "-b", "", "-s", "base", "+")
    assert code == 0
    dse = entries[0]
    assert dse["namingcontexts"] == [BASE_DN]
    assert sorted(dse["supportedcontrol"]) == ["1.2.840.113556.1.4.319", "1.2.840.113556.1.4.473"]
    assert dse["supportedldapversion"] == ["2", "3"]
    assert "supportedextension" not in dse  # no TLS configured: StartTLS is not offered


async def test_ldapsearch_paging_and_sort(start: Start) -> None:
    server = await start()
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN, "-E", "pr=2/noprompt",
                                          "-E", "sss=sn", "(objectClass=person)", "sn")
    assert code == 0, err
    assert [e["sn"][0] for e in entries] == ["King", "Miller", "Mülheim", "Müller", "Reception", "Smith"]
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN, "-E", "sss=-sn",
                                          "(objectClass=person)", "sn")
    assert code == 0, err
    assert [e["sn"][0] for e in entries][:2] == ["Smith", "Reception"]


async def test_ldapsearch_ldap_v2_bind(start: Start) -> None:
    server = await start()
    code, entries, err = await ldapsearch("-x", "-P", "2", "-H", url(server), "-b", BASE_DN, "(sn=king)", "cn")
    assert code == 0, err
    assert names(entries) == {"Carol King"}


async def test_ldapsearch_user_bind_sees_own_and_shared(start: Start) -> None:
    server = await start(shared_mailboxes=["shared@example.com"])
    code, entries, _ = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN, "(objectClass=person)", "cn")
    assert code == 0 and names(entries) == {"Reception"}
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-D", f"uid=201,{BASE_DN}", "-w", "alice-secret",
                                          "-b", BASE_DN, "(objectClass=person)", "cn")
    assert code == 0, err
    assert names(entries) == {"Jürgen Müller", "Bob Smith", "Zoë Mülheim", "Reception"}
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-D", "202", "-w", "bob-secret",
                                          "-b", BASE_DN, "(objectClass=person)", "cn")
    assert code == 0, err
    assert names(entries) == {"Carol King", "Dieter Miller", "Reception"}
    code, _, err = await ldapsearch("-x", "-H", url(server), "-D", f"uid=201,{BASE_DN}", "-w", "wrong",
                                    "-b", BASE_DN, "(cn=*)")
    assert code == 49, err


async def test_anonymous_disabled(start: Start) -> None:
    server = await start(anonymous=False)
    code, _, err = await ldapsearch("-x", "-H", url(server), "-b", BASE_DN, "(cn=*)")
    assert code == 48, err  # the anonymous bind itself is refused
    code, entries, err = await ldapsearch("-x", "-H", url(server), "-D", "201", "-w", "alice-secret",
                                          "-b", BASE_DN, "(cn=*)", "cn")
    assert code == 0 and len(entries) == 6, err


async def test_starttls_and_ldaps(start: Start, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = await start(tls_cert=str(cert), tls_key=str(key), ldaps_listen=ListenAddress("127.0.0.1", 0))
    env = {"LDAPTLS_CACERT": str(cert), "LDAPTLS_REQCERT": "demand"}
    code, entries, err = await ldapsearch("-x", "-ZZ", "-H", url(server), "-b", BASE_DN, "(sn=müller)", "cn",
                                          env=env)
    assert code == 0, err
    assert names(entries) == {"Jürgen Müller"}
    host, port = server.ldaps_addresses[0]
    code, entries, err = await ldapsearch("-x", "-H", f"ldaps://{host}:{port}", "-b", BASE_DN, "(sn=king)", "cn",
                                          env=env)
    assert code == 0, err
    assert names(entries) == {"Carol King"}
    code, dse, _ = await ldapsearch("-x", "-H", url(server), "-b", "", "-s", "base", "supportedExtension")
    assert dse[0]["supportedextension"] == ["1.3.6.1.4.1.1466.20037"]


async def test_ldapsearch_writes_are_refused(start: Start, tmp_path: Path) -> None:
    server = await start()
    exe = shutil.which("ldapdelete")
    assert exe, "ldapdelete is missing: install Debian ldap-utils"
    for args, expected in (((), 50), (("-D", "201", "-w", "alice-secret"), 53)):
        proc = await asyncio.create_subprocess_exec(exe, "-x", "-H", url(server), *args, f"uid=x,{BASE_DN}",
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == expected


# ---- ldap3 and each vendor's filters --------------------------------------------------------------

def ldap3_search(port: int, search_filter: str, attributes: Any = ("cn",), **kwargs: Any) -> tuple[set[str], Any]:
    server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE)
    with ldap3.Connection(server, auto_bind=True, raise_exceptions=False, **kwargs) as conn:
        conn.search(BASE_DN, search_filter, attributes=list(attributes))
        found = {str(e.cn) for e in conn.entries if "cn" in e}
        return found, conn.result


VENDOR_FILTERS = [
    # Yealink: ldap.name_filter / ldap.number_filter, prefix mode and "contains" mode
    ("yealink-name", "(|(cn=mül*)(sn=mül*))", {"Jürgen Müller", "Zoë Mülheim"}),
    ("yealink-name-contains", "(|(cn=*mill*)(sn=*mill*))", {"Dieter Miller"}),
    ("yealink-number", "(|(telephoneNumber=0301234*)(mobile=0301234*)(ipPhone=0301234*))", {"Jürgen Müller"}),
    ("yealink-number-intl", "(|(telephoneNumber=+4917055*)(mobile=+4917055*)(ipPhone=+4917055*))", {"Bob Smith"}),
    # Snom: name filter needs a telephoneNumber; number filter needs an sn
    ("snom-name", "(&(telephoneNumber=*)(sn=smi*))", set()),
    ("snom-name-2", "(&(telephoneNumber=*)(sn=kin*))", {"Carol King"}),
    ("snom-number", "(&(telephoneNumber=07114711*)(sn=*))", {"Dieter Miller"}),
    # Grandstream: "%" replaced by what is typed, number filters without a wildcard
    ("grandstream-name", "(|(cn=car*)(sn=car*))", {"Carol King"}),
    ("grandstream-number", "(|(telephoneNumber=01701112233)(Mobile=01701112233))", {"Jürgen Müller"}),
    # Gigaset: caller-ID lookup of an incoming number, exact match over three attributes
    ("gigaset-callerid", "(|(telephoneNumber=+49895550100)(mobile=+49895550100)(homePhone=+49895550100))",
     {"Bob Smith"}),
    ("gigaset-name", "(|(cn=zo*)(sn=zo*))", {"Zoë Mülheim"}),
    # Cisco: search items combined with objectClass
    ("cisco-name", "(&(objectClass=person)(|(sn=mill*)(cn=mill*)))", {"Dieter Miller"}),
    ("cisco-number", "(&(objectClass=person)(telephoneNumber=*4711*))",
     {"Jürgen Müller", "Dieter Miller", "Reception"}),
    # Fanvil: contains mode
    ("fanvil-name", "(|(cn=*king*)(sn=*king*))", {"Carol King"}),
    ("fanvil-number", "(|(telephoneNumber=*2233*)(mobile=*2233*))", {"Jürgen Müller"}),
    # Poly: range filters over sn
    ("poly-range", "(&(sn>=M)(sn<=Mz))", {"Dieter Miller"}),
    # Formatting never matters for numbers
    ("number-e164", "(telephoneNumber=+493012344711)", {"Jürgen Müller"}),
    ("number-national-spaced", "(telephoneNumber=030 12344711)", {"Jürgen Müller"}),
    ("number-00-prefix", "(telephoneNumber=0049 30 1234 4711)", {"Jürgen Müller"}),
    ("number-extension", "(telephoneNumber=4711)", {"Reception"}),
    ("negation", "(&(objectClass=person)(!(sn=m*)))", {"Bob Smith", "Carol King", "Reception"}),
    ("approx", "(sn~=muller)", {"Jürgen Müller"}),
]


@pytest.mark.parametrize(("search_filter", "expected"), [pytest.param(f, e, id=i) for i, f, e in VENDOR_FILTERS])
async def test_vendor_filters_with_ldap3(start: Start, search_filter: str, expected: set[str]) -> None:
    server = await start()
    found, result = await asyncio.to_thread(ldap3_search, server.addresses[0][1], search_filter)
    assert result["result"] == 0, result
    assert found == expected


async def test_ldap3_attribute_selection_is_case_insensitive(start: Start) -> None:
    server = await start()

    def run() -> Any:
        with ldap3.Connection(ldap3.Server("127.0.0.1", port=server.addresses[0][1], get_info=ldap3.NONE),
                              auto_bind=True) as conn:
            conn.search(BASE_DN, "(sn=king)", attributes=["CN", "TelephoneNumber"])
            selected = conn.response[0]["raw_attributes"]
            conn.search(BASE_DN, "(sn=king)", attributes=["1.1"])
            none = conn.response[0]["raw_attributes"]
            return selected, none

    selected, none = await asyncio.to_thread(run)
    assert {k.lower() for k in selected} == {"cn", "telephonenumber"}
    assert selected["cn"] == [b"Carol King"]
    assert dict(none) == {}


async def test_ldap3_poly_paged_sorted_browse(start: Start) -> None:
    server = await start()

    def run() -> list[str]:
        with ldap3.Connection(ldap3.Server("127.0.0.1", port=server.addresses[0][1], get_info=ldap3.NONE),
                              auto_bind=True) as conn:
            sort = ("1.2.840.113556.1.4.473", True, _sort_value("sn"))
            pages = conn.extend.standard.paged_search(BASE_DN, "(sn>=K)", attributes=["sn"], paged_size=2,
                                                      controls=[sort], generator=True)
            return [e["attributes"]["sn"][0] for e in pages if e["type"] == "searchResEntry"]

    # ldap3 hands each page's entries back in its own order; the wire order is checked with the raw client
    # in test_ldap_server.py. Here: every entry exactly once across the pages, with the sort control accepted.
    assert sorted(await asyncio.to_thread(run)) == ["King", "Miller", "Mülheim", "Müller", "Reception", "Smith"]


def _sort_value(attr: str) -> bytes:
    from pbxsync.plugin.ldap.ber import encode_text, sequence

    return sequence(sequence(encode_text(attr)))


async def test_ldap3_writes_refused_with_the_right_codes(start: Start) -> None:
    server = await start()

    def run(user: str | None, password: str | None) -> list[int]:
        srv = ldap3.Server("127.0.0.1", port=server.addresses[0][1], get_info=ldap3.NONE)
        with ldap3.Connection(srv, user=user, password=password, auto_bind=True, raise_exceptions=False) as conn:
            dn = f"uid=new,{BASE_DN}"
            conn.add(dn, ["inetOrgPerson"], {"cn": "x", "sn": "y"})
            codes = [conn.result["result"]]
            conn.modify(dn, {"sn": [(ldap3.MODIFY_REPLACE, ["z"])]})
            codes.append(conn.result["result"])
            conn.delete(dn)
            codes.append(conn.result["result"])
            conn.modify_dn(dn, "uid=other")
            codes.append(conn.result["result"])
            return codes

    assert await asyncio.to_thread(run, None, None) == [50, 50, 50, 50]
    assert await asyncio.to_thread(run, f"uid=202,{BASE_DN}", "bob-secret") == [53, 53, 53, 53]


async def test_ldap3_compare_and_non_ascii(start: Start) -> None:
    server = await start()

    def run() -> tuple[bool, bool, str]:
        with ldap3.Connection(ldap3.Server("127.0.0.1", port=server.addresses[0][1], get_info=ldap3.NONE),
                              auto_bind=True) as conn:
            conn.search(BASE_DN, "(givenName=zoë)", attributes=["cn"])
            dn = conn.entries[0].entry_dn
            name = str(conn.entries[0].cn)
            return conn.compare(dn, "sn", "MÜLHEIM"), conn.compare(dn, "sn", "Müller"), name

    same, other, name = await asyncio.to_thread(run)
    assert same is True and other is False
    assert name == "Zoë Mülheim"


async def test_ldap3_ldaps_with_certificate_validation(start: Start, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = await start(tls_cert=str(cert), tls_key=str(key), ldaps_listen=ListenAddress("127.0.0.1", 0))

    def run() -> set[str]:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(cert))
        srv = ldap3.Server("127.0.0.1", port=server.ldaps_addresses[0][1], use_ssl=True, tls=tls,
                           get_info=ldap3.NONE)
        with ldap3.Connection(srv, auto_bind=True) as conn:
            conn.search(BASE_DN, "(cn=*)", attributes=["cn"])
            return {str(e.cn) for e in conn.entries}

    assert len(await asyncio.to_thread(run)) == 6

    def plain_start_tls() -> set[str]:
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(cert))
        srv = ldap3.Server("127.0.0.1", port=server.addresses[0][1], tls=tls, get_info=ldap3.NONE)
        with ldap3.Connection(srv, auto_bind=ldap3.AUTO_BIND_TLS_BEFORE_BIND) as conn:
            conn.search(BASE_DN, "(sn=smith)", attributes=["cn"])
            return {str(e.cn) for e in conn.entries}

    assert await asyncio.to_thread(plain_start_tls) == {"Bob Smith"}


async def test_ldap3_reads_root_dse(start: Start) -> None:
    server = await start()

    def run() -> Any:
        srv = ldap3.Server("127.0.0.1", port=server.addresses[0][1], get_info=ldap3.DSA)
        with ldap3.Connection(srv, auto_bind=True):
            return srv.info

    info = await asyncio.to_thread(run)
    assert BASE_DN in info.naming_contexts
    assert "1.2.840.113556.1.4.319" in [c[0] for c in info.supported_controls]


async def test_stopped_server_refuses_connections(start: Start) -> None:
    server = await start()
    port = server.addresses[0][1]
    await server.stop()
    with pytest.raises(LDAPSocketOpenError):
        await asyncio.to_thread(ldap3_search, port, "(cn=*)")
