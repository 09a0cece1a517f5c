"""Ranges are indexed, and the cost estimate refuses absurd filters before any entry is looked at."""

from __future__ import annotations

import pytest

from pbxsync.plugin.ldap.build import ContactRow, build_index
from pbxsync.plugin.ldap.cost import candidates_estimate, refusal
from pbxsync.plugin.ldap.filters import parse_filter
from pbxsync.plugin.ldap.index import Entry
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.ldap.protocol import ResultCode
from pbxsync.plugin.ldap.query import compile_filter, plan
from tests.support.ldap_phonebook import BASE_DN

FORMS = NumberForms("DE")
NAMES = ["Anna Zed", "Bert Young", "Carl Xu", "Dora Wolf", "Emil Vogt", "Frida Ulm", "Gero Tal", "Hans Sand",
         "Ines Rau", "Jan Quast", "Kai Pohl", "Lena Ott", "Müller Ärger", "Zoë Öz"]
INDEX = build_index([(ContactRow("a@x", str(i), name, name.split()[0], name.split()[1], f"Org {i % 4}", "", "[]"),
                      []) for i, name in enumerate(NAMES)], BASE_DN, FORMS)


@pytest.mark.parametrize("text", ["(sn>=m)", "(sn<=m)", "(cn>=hans)", "(cn<=Hans Sand)", "(givenName>=zz)",
                                  "(o>=org 2)", "(o<=)", "(sn>=ö)", "(sn<=Ärger)", "(mail>=a)", "(title<=z)"])
def test_a_range_is_answered_from_the_sorted_column_exactly(text: str) -> None:
    f = parse_filter(text)
    match = compile_filter(f, FORMS)
    expected = [i for i in range(INDEX.count) if match(Entry(INDEX, i)) is True]
    planned = plan(f, INDEX, FORMS)
    assert planned is not None, "a range over a name attribute is indexed"
    ids, exact = planned
    assert exact and list(ids) == expected


def test_the_old_hostile_range_filter_costs_nothing_now() -> None:
    hostile = parse_filter("(|" + "".join(f"(o>=zzz{i:04d})" for i in range(50)) + ")")
    assert candidates_estimate(hostile, INDEX) == 0


def test_refusals() -> None:
    many = parse_filter("(|" + "".join(f"(cn=x{i})" for i in range(65)) + ")")
    too_many = refusal(many, INDEX, 64, 0)
    assert too_many is not None and too_many.code == ResultCode.ADMIN_LIMIT_EXCEEDED
    assert refusal(many, INDEX, 0, 0) is None  # 0 = no limit
    unindexed = parse_filter("(|" + "".join(f"(cn~=x{i})" for i in range(40)) + ")")
    found = refusal(unindexed, INDEX, 64, 40 * INDEX.count - 1)
    assert found is not None and found.code == ResultCode.UNWILLING_TO_PERFORM
    assert refusal(unindexed, INDEX, 64, 40 * INDEX.count) is None
    phone = parse_filter("(|(cn=an*)(sn=an*)(telephoneNumber=*4711*)(mobile=*4711*))")
    assert refusal(phone, INDEX, 64, 1000) is None
