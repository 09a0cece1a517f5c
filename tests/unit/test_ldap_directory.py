"""The phonebook index, matching rules, access decisions and search limits, without a network."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxsync.plugin.ldap.access import Access
from pbxsync.plugin.ldap.build import ContactRow, PhoneRow, build_index, contact_dn
from pbxsync.plugin.ldap.filters import parse_filter
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import ResultCode, Scope, SearchRequest, SortKey
from pbxsync.plugin.ldap.query import candidates, compile_filter
from pbxsync.plugin.ldap.schema import CN, attribute_index
from pbxsync.plugin.ldap.search import run_search, sort_entries
from pbxsync.sync.config import Config, LdapConfig, UserConfig
from pbxsync.sync.secrets import Secret
from tests.support.ldap_phonebook import BASE_DN

FORMS = NumberForms("DE")


def row(mailbox: str, item: str, name: str, surname: str = "", **phones: str) -> tuple[ContactRow, list[PhoneRow]]:
    given = name.split(maxsplit=1)[0] if " " in name else ""
    numbers = []
    for kind, raw in phones.items():
        e164 = FORMS.parse_e164(raw)
        numbers.append(PhoneRow(kind, raw, e164, "".join(c for c in raw if c.isdigit())))
    return ContactRow(mailbox, item, name, given, surname, "", "", "[]"), numbers


ROWS = [
    row("a@x", "1", "Jürgen Müller", "Müller", business="030 1234 4711"),
    row("a@x", "2", "Anna Schmidt", "Schmidt", mobile="+49 170 5554711", home="089 555 0100"),
    row("b@x", "3", "Straße Test", "Straße", business="+1 212 555 0199"),
    row("b@x", "4", "Reception", "", business="4711"),
]
INDEX = build_index(ROWS, BASE_DN, FORMS)


def search(text: str, visible: frozenset[str] | None = None, **kw: object) -> list[str]:
    request = SearchRequest(BASE_DN, Scope.ONE, 0, 0, False, parse_filter(text), ())
    outcome = run_search(INDEX, request, visible, FORMS, size_cap=0, time_cap=0, now=lambda: 0.0)
    assert outcome.code == ResultCode.SUCCESS
    return [e.folded(CN)[0] for e in outcome.entries]


def test_number_forms_cover_every_way_of_typing() -> None:
    forms = FORMS.forms("030 1234 4711", "+493012344711", "03012344711")
    assert forms == ("493012344711", "00493012344711", "03012344711")
    assert "4711" in FORMS.forms("4711", None, "4711")
    assert "493012344711" in FORMS.assertion_forms("+49 30 1234-4711")
    assert "03012344711" in FORMS.assertion_forms("030/12344711")


@pytest.mark.parametrize(("text", "expected"), [
    ("(telephoneNumber=*4711*)", ["jürgen müller", "reception"]),
    ("(telephoneNumber=+49 30 12344711)", ["jürgen müller"]),
    ("(telephoneNumber=0301234*)", ["jürgen müller"]),
    ("(cn=*\\00*)", []),  # a NUL or other control character: stored values never hold one
    ("(cn=*r\\00*)", []),
    ("(sn=schmidt\\01)", []),
    # forms derived from the stored international digits, fragments across their 00 / 0 prefixes
    ("(telephoneNumber=*0049301234*)", ["jürgen müller"]),
    ("(telephoneNumber=004930*)", ["jürgen müller"]),
    ("(telephoneNumber=*4930*)", ["jürgen müller"]),
    ("(mobile=*01705*)", ["anna schmidt"]),
    ("(mobile=*0170555*)", ["anna schmidt"]),
    ("(telephoneNumber=*001212*)", ["strasse test"]),
    ("(telephoneNumber=01212*)", []),  # +1 is not the default region: no trunk-prefix form
    ("(telephoneNumber=00112125550199)", ["strasse test"]),
    ("(telephoneNumber=+4930*)", ["jürgen müller"]),
    ("(telephoneNumber=004930*4711)", ["jürgen müller"]),
    ("(mobile=*555 4711)", ["anna schmidt"]),
    ("(homePhone=0895550100)", ["anna schmidt"]),
    ("(cn=*MÜL*)", ["jürgen müller"]),
    ("(sn=strasse)", ["strasse test"]),  # casefold: ß matches ss
    ("(cn=  jürgen   müller )", ["jürgen müller"]),  # insignificant spaces
    ("(sn~=muller)", ["jürgen müller"]),
    ("(ipPhone=*4711*)", []),  # unknown attribute: Undefined
    ("(!(ipPhone=1))", []),  # not Undefined is Undefined
    ("(|(ipPhone=1)(sn=schmidt))", ["anna schmidt"]),
    ("(&)", ["anna schmidt", "jürgen müller", "reception", "strasse test"]),
    ("(|)", []),
    ("(objectClass=inetOrgPerson)", ["anna schmidt", "jürgen müller", "reception", "strasse test"]),
    ("(sn>=s)", ["anna schmidt", "strasse test"]),
    ("(telephoneNumber=*+*)", ["jürgen müller", "reception", "strasse test"]),
])
def test_matching(text: str, expected: list[str]) -> None:
    assert search(text) == expected


def test_visibility_limits_results() -> None:
    assert search("(objectClass=*)", visible=frozenset({"b@x"})) == ["reception", "strasse test"]


def test_planner_candidates_are_a_superset_of_matches() -> None:
    for text in ("(|(cn=*mül*)(telephoneNumber=*4711*))", "(&(telephoneNumber=*)(sn=m*))", "(sn=schmidt)",
                 "(telephoneNumber=4711)", "(mobile=01705554711)"):
        f = parse_filter(text)
        match = compile_filter(f, FORMS)
        truth = {e.eid for e in INDEX.entries if match(e) is True}
        planned = candidates(f, INDEX, FORMS)
        assert planned is not None
        ids = list(planned)
        assert truth <= set(ids) and ids == sorted(ids)


def test_dn_is_stable_and_independent_of_names() -> None:
    assert contact_dn("a@x", "1", BASE_DN) == contact_dn("a@x", "1", BASE_DN)
    assert contact_dn("a@x", "1", BASE_DN) != contact_dn("b@x", "1", BASE_DN)


def test_time_limit_uses_the_injected_clock() -> None:
    rows = [row("a@x", str(i), f"Person {i:05d}", "P") for i in range(3000)]
    index = build_index(rows, BASE_DN, FORMS)
    ticks = iter(range(10 ** 6))
    request = SearchRequest(BASE_DN, Scope.SUB, 0, 1, False, parse_filter("(!(sn=x))"), ())
    outcome = run_search(index, request, None, FORMS, size_cap=0, time_cap=0, now=lambda: float(next(ticks)))
    assert outcome.code == ResultCode.TIME_LIMIT_EXCEEDED


def test_size_limit_truncates_with_code_4() -> None:
    request = SearchRequest(BASE_DN, Scope.ONE, 2, 0, False, parse_filter("(cn=*)"), ())
    outcome = run_search(INDEX, request, None, FORMS, size_cap=0, time_cap=0, now=lambda: 0.0)
    assert outcome.code == ResultCode.SIZE_LIMIT_EXCEEDED and len(outcome.entries) == 2
    capped = run_search(INDEX, SearchRequest(BASE_DN, Scope.ONE, 0, 0, False, parse_filter("(cn=*)"), ()), None,
                        FORMS, size_cap=3, time_cap=0, now=lambda: 0.0)
    assert capped.code == ResultCode.SIZE_LIMIT_EXCEEDED and len(capped.entries) == 3


def test_sort_by_surname_reverse() -> None:
    request = SearchRequest(BASE_DN, Scope.ONE, 0, 0, False, parse_filter("(cn=*)"), ())
    outcome = run_search(INDEX, request, None, FORMS, size_cap=0, time_cap=0, now=lambda: 0.0, collect_all=True)
    code, _ = sort_entries(INDEX, outcome.entries, (SortKey("SN", True),))
    assert code == ResultCode.SUCCESS
    assert [e.folded(attribute_index("sn") or 0)[0] for e in outcome.entries] == [
        "strasse", "schmidt", "reception", "müller"]
    assert sort_entries(INDEX, outcome.entries, (SortKey("nope", False),))[0] == ResultCode.NO_SUCH_ATTRIBUTE


def _config(**ldap: object) -> Config:
    users = [UserConfig("201", ["Alice@Example.com"], ldap_password=Secret("pw1")),
             UserConfig("202", ["bob@example.com"])]  # no LDAP password: cannot bind as themselves
    return Config(users=users, ldap=LdapConfig(base_dn=BASE_DN, **ldap))  # type: ignore[arg-type]


def test_access_decisions() -> None:
    access = Access(_config(shared_mailboxes=["shared@example.com"], bind_dn="cn=phones,dc=example,dc=com",
                            bind_password=Secret("svc"), anonymous=True))
    anon = access.bind(3, "", b"")
    assert anon.code == ResultCode.SUCCESS and anon.view is not None
    assert anon.view.mailboxes == frozenset({"shared@example.com"})
    user = access.bind(3, f"UID=201, {BASE_DN.upper()}", b"pw1")
    assert user.code == ResultCode.SUCCESS and user.view is not None
    assert user.view.mailboxes == frozenset({"shared@example.com", "alice@example.com"})
    assert access.bind(2, "alice@example.com", b"pw1").code == ResultCode.SUCCESS
    assert access.bind(3, "201", b"wrong").code == ResultCode.INVALID_CREDENTIALS
    assert access.bind(3, "202", b"anything").code == ResultCode.INVALID_CREDENTIALS
    service = access.bind(3, "cn=phones,dc=example,dc=com", b"svc")
    assert service.code == ResultCode.SUCCESS and service.view is not None and service.view.authenticated
    assert access.bind(4, "", b"").code == ResultCode.PROTOCOL_ERROR
    assert access.bind(3, "201", None).code == ResultCode.AUTH_METHOD_NOT_SUPPORTED


def test_anonymous_access_is_off_unless_configured() -> None:
    access = Access(_config())
    assert access.anonymous_view() is None
    assert access.bind(3, "", b"").code == ResultCode.INAPPROPRIATE_AUTHENTICATION


def test_access_when_anonymous_is_off_and_everything_is_shared() -> None:
    access = Access(_config(anonymous=False))
    assert access.anonymous_view() is None
    assert access.bind(3, "", b"").code == ResultCode.INAPPROPRIATE_AUTHENTICATION
    assert access.bind(3, "201", b"").code == ResultCode.UNWILLING_TO_PERFORM
    user = access.bind(3, "201", b"pw1")
    assert user.view is not None and user.view.mailboxes is None  # "*" shares every mailbox


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    access = Access(_config(bind_dn="cn=x", bind_password=Secret("topsecret")))
    assert "topsecret" not in repr(access.bind(3, "cn=x", b"nope"))


@pytest.mark.parametrize("scope", [Scope.BASE, Scope.ONE, Scope.SUB])
def test_a_hidden_contacts_dn_answers_no_such_object_like_an_unknown_one(scope: Scope) -> None:
    hidden = contact_dn("b@x", "3", BASE_DN)[1]
    unknown = contact_dn("b@x", "no-such-item", BASE_DN)[1]
    answers = []
    for dn in (hidden, unknown):
        request = SearchRequest(dn, scope, 0, 0, False, parse_filter("(objectClass=*)"), ())
        outcome = run_search(INDEX, request, frozenset({"a@x"}), FORMS, size_cap=0, time_cap=0, now=lambda: 0.0)
        answers.append((outcome.code, outcome.diagnostic, outcome.matched_dn, outcome.entries))
    assert answers[0] == answers[1] and answers[0][0] == ResultCode.NO_SUCH_OBJECT
    visible = run_search(INDEX, SearchRequest(hidden, Scope.BASE, 0, 0, False, parse_filter("(objectClass=*)"), ()),
                         None, FORMS, size_cap=0, time_cap=0, now=lambda: 0.0)
    assert [e.eid for e in visible.entries] != []  # seen by a bind that may see mailbox b@x
