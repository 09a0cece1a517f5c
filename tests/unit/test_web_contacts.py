"""*My contacts* and click to call (aiohttp test client, the AMI simulator): what is found, what is shown,
what is dialled, and what is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from pbxsync.plugin.ami.sim_world import Phone, PhoneBehaviour
from pbxsync.plugin.daemon.clock import FakeClock
from pbxsync.plugin.web import click_to_call
from pbxsync.plugin.web.click_to_call import call_request, dialable
from pbxsync.sync.errors import ValidationError
from pbxsync.sync.model import PhoneKind, PhoneNumber
from pbxsync.sync.phones import search_forms
from pbxsync.sync.store.db import Store
from tests.support.web_employee import XSS, Client, employee_config, fill_phonebook, signed_in, simulated_pbx
from tests.support.web_portal import make_context, portal_client

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def search(client: Client, query: str) -> list[str]:
    response = await client.get("/my/contacts/search.json", params={"q": query})
    assert response.status == 200
    return [c["name"] for c in (await response.json())["contacts"]]


@asynccontextmanager
async def bob(store: Store, extension: str = "102", **config: Any) -> AsyncIterator[Client]:
    """The portal over the sample phonebook, `extension` signed in."""
    await fill_phonebook(store, NOW)
    async with portal_client(await make_context(store, employee_config(**config))) as client:
        await signed_in(client, extension)
        yield client


async def test_any_form_of_a_number_finds_the_contact(store: Store) -> None:
    async with bob(store) as client:
        for query in ["5678", "1234 5678", "+49 30 1234", "030 1234", "0049 30 12345", "4930123"]:
            assert await search(client, query) == ["Carla Kunde"], query


async def test_a_name_or_company_finds_the_contact(store: Store) -> None:
    async with bob(store) as client:
        for query in ["carla", "KUNDE", "acme", "globex"]:
            assert len(await search(client, query)) == 1, query


async def test_only_the_phonebook_ldap_gives_the_user_is_searched(store: Store) -> None:
    async with bob(store) as client:
        assert await search(client, "2345 6700") == []  # Ada's private contact, for Bob
    async with bob(store, "101") as client:
        assert await search(client, "2345 6700") == ["Ada's Private Friend"]
    async with bob(store, shared=["ada@example.com"]) as client:
        assert await search(client, "2345 6700") == ["Ada's Private Friend"]
    async with bob(store, shared=["*"]) as client:
        assert await search(client, "2345 6700") == ["Ada's Private Friend"]


async def test_a_short_or_wild_query_finds_nothing_or_only_what_it_says(store: Store) -> None:
    async with bob(store) as client:
        for query in ["a", "%%", "_\\", "x" * 5000, "' OR 1=1 --", 'NEAR("a" "b")', '"\x00\u202e', "* OR names:*"]:
            assert await search(client, query) == [], query


def test_typed_number_forms_include_the_international_reading() -> None:
    assert search_forms("030 1234", "DE") == ("0301234", "49301234")
    assert search_forms("0049 30 1234", "DE") == ("0049301234", "49301234")
    assert search_forms("+49 30 1234", "DE") == ("49301234",)
    assert search_forms("12", "DE") == ()


async def test_numbers_show_in_national_and_international_form(store: Store) -> None:
    await fill_phonebook(store, NOW)
    async with portal_client(await make_context(store, employee_config())) as client:
        await signed_in(client, "102")
        data = await (await client.get("/my/contacts/search.json", params={"q": "Carla"})).json()
        numbers = [(n["kind"], n["national"], n["international"], n["callable"])
                   for n in data["contacts"][0]["numbers"]]
        assert numbers == [("Business", "030 12345678", "+49 30 12345678", True),
                           ("Mobile", "0171 5550199", "+49 171 5550199", True)]
        page = await (await client.get("/my/contacts", params={"q": "5678"})).text()
        assert "030 12345678" in page and "+49 30 12345678" in page and 'name="contact"' in page
        odd = await (await client.get("/my/contacts/search.json", params={"q": "Odd Number"})).json()
        assert [n["callable"] for n in odd["contacts"][0]["numbers"]] == [False]


async def test_a_hostile_name_is_escaped_on_the_page_and_plain_text_in_json(store: Store) -> None:
    await fill_phonebook(store, NOW)
    async with portal_client(await make_context(store, employee_config())) as client:
        await signed_in(client, "102")
        page = await (await client.get("/my/contacts", params={"q": "Evil"})).text()
        assert XSS not in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page
        assert "Evil &amp; Co &lt;b&gt;" in page
        data = await (await client.get("/my/contacts/search.json", params={"q": "Evil"})).json()
        assert data["contacts"][0]["name"] == XSS  # the script puts it in with textContent


async def test_signed_out_visitors_get_neither_page_nor_json(store: Store) -> None:
    async with portal_client(await make_context(store, employee_config())) as client:
        page = await client.get("/my/contacts", allow_redirects=False)
        assert page.status == 303 and page.headers["Location"].startswith("/signin")
        assert (await client.get("/my/contacts/search.json", allow_redirects=False)).status == 303
        assert (await client.post("/my/contacts/call", data={"contact": "1", "number": "0"})).status in (401, 403)


def test_the_number_dialled_is_e164_or_digits_and_nothing_else() -> None:
    assert dialable(PhoneNumber(PhoneKind.BUSINESS, "030 1234", "+49301234", "0301234")) == "+49301234"
    assert dialable(PhoneNumber(PhoneKind.BUSINESS, "4711", None, "4711")) == "4711"
    for e164, digits in [("+4930&PJSIP/999", "4930999"), (None, ""), (None, "1" * 40), ("+49\r\nAction: x", "49")]:
        with pytest.raises(ValidationError):
            dialable(PhoneNumber(PhoneKind.BUSINESS, "x", e164, digits))


def test_the_originate_rings_the_users_own_device_with_the_contacts_name() -> None:
    request = call_request(employee_config(), "102", "+49301234", 'Carla "Boss" <x>, ${EXTEN}\r\nAction: Hangup')
    assert request.channel == "PJSIP/102" and request.exten == "+49301234"
    assert request.context == "from-internal"
    assert request.caller_id == "Carla Boss x EXTEN Action: Hangup <+49301234>"
    for number in ("+4930&1", "49,30", "4930\r\n", ""):
        with pytest.raises(ValidationError):
            call_request(employee_config(), "102", number, "x")


def test_a_contact_name_of_only_punctuation_shows_the_number_on_the_phone() -> None:
    assert call_request(employee_config(), "102", "+49301234", '"<>";,').caller_id == "+49301234 <+49301234>"


async def call(client: Client, token: str, contact: str, number: str = "0", **extra: str) -> tuple[int, str]:
    response = await client.post("/my/contacts/call",
                                 data={"csrf": token, "contact": contact, "number": number, **extra})
    return response.status, await response.text()


async def contact_id(client: Client, query: str) -> str:
    data = await (await client.get("/my/contacts/search.json", params={"q": query})).json()
    return str(data["contacts"][0]["id"])


async def test_click_to_call_originates_from_the_users_own_phone(store: Store) -> None:
    await fill_phonebook(store, NOW)
    async with simulated_pbx() as (sim, ami):
        ctx = await make_context(store, employee_config(click_to_call_context="outbound"))
        ctx.ami.publish(ami)
        async with portal_client(ctx) as client:
            token = await signed_in(client, "102")
            status, page = await call(client, token, await contact_id(client, "Carla"), "1",
                                      extension="101", channel="PJSIP/101")  # extra fields are ignored
            assert status == 200 and "You answered: your phone is now calling Carla Kunde." in page
    (sent,) = sim.originates
    assert (sent.get("Channel"), sent.get("Context"), sent.get("Exten")) == ("PJSIP/102", "outbound", "+491715550199")
    assert sent.get("CallerID") == "Carla Kunde <+491715550199>"


async def test_click_to_call_says_ringing_then_keeps_going(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(click_to_call, "OUTCOME_WAIT_SECONDS", 0.05)
    await fill_phonebook(store, NOW)
    async with simulated_pbx([Phone("102", PhoneBehaviour.ANSWER, answer_delay=30.0)]) as (sim, ami):
        ctx = await make_context(store, employee_config())
        ctx.ami.publish(ami)
        async with portal_client(ctx) as client:
            token = await signed_in(client, "102")
            status, page = await call(client, token, await contact_id(client, "Carla"))
            assert status == 200 and "Your phone is ringing. Pick it up to call Carla Kunde." in page
            assert list(sim.ringing) == ["PJSIP/102-00000000;1"]


@pytest.mark.parametrize(("behaviour", "words"), [(PhoneBehaviour.BUSY, "Your phone is busy."),
                                                  (PhoneBehaviour.UNKNOWN, "Your phone could not be rung.")])
async def test_a_phone_that_cannot_take_the_call_is_said_in_words(store: Store, behaviour: PhoneBehaviour,
                                                                   words: str) -> None:
    await fill_phonebook(store, NOW)
    async with simulated_pbx([Phone("102", behaviour)]) as (_, ami):
        ctx = await make_context(store, employee_config())
        ctx.ami.publish(ami)
        async with portal_client(ctx) as client:
            token = await signed_in(client, "102")
            status, page = await call(client, token, await contact_id(client, "Carla"))
            assert status == 200 and words in page


async def test_without_an_ami_link_the_call_is_not_placed_and_the_page_says_why(store: Store) -> None:
    await fill_phonebook(store, NOW)
    async with portal_client(await make_context(store, employee_config())) as client:
        token = await signed_in(client, "102")
        status, page = await call(client, token, await contact_id(client, "Carla"))
        assert status == 200 and "The phone system cannot be reached right now." in page


async def test_hostile_call_forms_are_refused_before_anything_is_dialled(store: Store) -> None:
    await fill_phonebook(store, NOW)
    async with simulated_pbx() as (sim, ami):
        ctx = await make_context(store, employee_config())
        ctx.ami.publish(ami)
        async with portal_client(ctx) as client:
            token = await signed_in(client, "102")
            carla = await contact_id(client, "Carla")
            odd = await contact_id(client, "Odd Number")
            for contact, number, status in [("9999", "0", 404), ("-1", "0", 404), ("1e3", "0", 404),
                                            ("", "0", 404), ("0x1", "0", 404), ("١", "0", 404),
                                            (carla, "7", 400), (carla, "-1", 400), (carla, "", 400),
                                            (carla, "9" * 5000, 400),
                                            ("9" * 5000, "0", 404), (carla, "²", 400),
                                            (carla, "0\r\nAction: Hangup", 400), (odd, "0", 400)]:
                assert (await call(client, token, contact, number))[0] == status, (contact, number)
            # Ada's private contact (id of the last inserted row) is not Bob's to call
            async with store.conn.execute("SELECT id FROM contacts WHERE mailbox = 'ada@example.com'") as cur:
                (ada_id,) = [str(r[0]) async for r in cur]
            assert (await call(client, token, ada_id))[0] == 404
            without_token = await client.post("/my/contacts/call", data={"contact": carla, "number": "0"})
            assert without_token.status == 403
    assert sim.originates == []


async def test_click_to_call_is_rate_limited_per_user(store: Store) -> None:
    await fill_phonebook(store, NOW)
    clock = FakeClock(NOW)
    async with simulated_pbx() as (sim, ami):
        ctx = await make_context(store, employee_config(), clock=clock)
        ctx.ami.publish(ami)
        async with portal_client(ctx) as client:
            token = await signed_in(client, "102")
            carla = await contact_id(client, "Carla")
            statuses = [(await call(client, token, carla))[0] for _ in range(7)]
            assert statuses == [200] * 6 + [429]
            status, page = await call(client, token, carla)
            assert status == 429 and "Too many calls in a short time." in page
            clock.advance(600)
            assert (await call(client, token, carla))[0] == 200
    assert len(sim.originates) == 7


async def test_the_json_answer_is_bounded_and_says_when_there_is_more(store: Store) -> None:
    from tests.support.web_employee import Card, add_cards

    await add_cards(store, "bob@example.com", [Card(f"Many {i:03d}", "", (("business", f"030 555{i:04d}"),))
                                               for i in range(80)], NOW)
    async with portal_client(await make_context(store, employee_config())) as client:
        await signed_in(client, "102")
        data = await (await client.get("/my/contacts/search.json", params={"q": "Many"})).json()
        assert len(data["contacts"]) == 50 and data["more"] is True
        assert json.dumps(data).count('"callable": true') == 50
