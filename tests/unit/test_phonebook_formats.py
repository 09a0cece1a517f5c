"""The vendor XML documents against the structures the vendors publish (docs/phones.md names the
sources), hostile names, dialable numbers, search and paging. Pure: no server, no store."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsync.plugin.ldap.build import ContactRow, PhoneRow
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.phonebook.entries import NAME_LIMIT, BookEntry, Dialer, book_entry, matches
from pbxsync.plugin.phonebook.pages import CISCO_SEARCH, FORMATS, SNOM_SEARCH, ask_of, link, page_of, searched
from pbxsync.sync.model import PhoneKind
from pbxsync.sync.phones import phone_number

FORMS = NumberForms("DE")
NATIONAL = Dialer(FORMS, "national", "")


def phone(kind: str, raw: str) -> PhoneRow:
    n = phone_number(PhoneKind(kind), raw, "DE")
    return PhoneRow(kind, n.raw, n.e164, n.digits)


def entry(name: str, *phones: tuple[str, str], given: str = "", surname: str = "", company: str = "",
          dialer: Dialer = NATIONAL) -> BookEntry:
    row = ContactRow("alice@example.com", ascii(name)[:40], name, given, surname, company, "", "[]")
    return book_entry(row, [phone(k, r) for k, r in phones], dialer)


JM = entry("Jürgen Müller", ("business", "030 1234 4711"), ("mobile", "+49 170 1112233"),
           given="Jürgen", surname="Müller", company="ACME GmbH")
CAROL = entry("Carol King", ("business", "+1 212 555 0199"), given="Carol", surname="King")
RECEPTION = entry("Reception", ("business", "4711"))
BOOK = (CAROL, JM, RECEPTION)


def render(name: str, entries: Sequence[BookEntry] = BOOK, **params: str) -> ET.Element:
    fmt = {"cisco-search": CISCO_SEARCH, "snom-search": SNOM_SEARCH}.get(name) or FORMATS[name]
    ask = ask_of(fmt, params)
    page = page_of(fmt, searched(entries, ask.query), ask, lambda p: link("http://pbx:8089/" + name + ".xml", p))
    body = fmt.render(page)
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(body)


def texts(root: ET.Element, path: str) -> list[str]:
    return [e.text or "" for e in root.iterfind(path)]


# ---- numbers as the phone dials them ---------------------------------------------------------------


def test_national_form_dials_home_numbers_with_the_trunk_prefix_and_others_with_the_international_prefix() -> None:
    assert [n.dial for n in JM.numbers] == ["03012344711", "01701112233"]
    assert [n.dial for n in CAROL.numbers] == ["0012125550199"]


def test_international_and_e164_forms() -> None:
    international = entry("X", ("business", "030 1234 4711"), dialer=Dialer(FORMS, "international", ""))
    e164 = entry("X", ("business", "030 1234 4711"), dialer=Dialer(FORMS, "e164", ""))
    assert international.numbers[0].dial == "00493012344711"
    assert e164.numbers[0].dial == "+493012344711"


def test_dial_prefix_goes_before_external_numbers_but_not_before_an_internal_extension() -> None:
    dialer = Dialer(FORMS, "national", "0")
    assert entry("X", ("business", "030 1234 4711"), dialer=dialer).numbers[0].dial == "003012344711"
    assert entry("X", ("business", "4711"), dialer=dialer).numbers[0].dial == "4711"


def test_numbers_are_ordered_by_kind_deduplicated_and_contacts_without_a_dialable_number_have_none() -> None:
    e = entry("X", ("mobile", "0170 1112233"), ("business", "030 98765"), ("other", "+49 170 1112233"))
    assert [(n.kind, n.dial) for n in e.numbers] == [("business", "03098765"), ("mobile", "01701112233")]
    assert entry("Nobody", ("business", "sip:alice@pbx.example.com")).numbers == ()


# ---- each vendor's published structure ---------------------------------------------------------------


def test_yealink_directory() -> None:
    root = render("yealink")
    assert root.tag == "YealinkIPPhoneDirectory"
    assert [e.tag for e in root] == ["Title", "DirectoryEntry", "DirectoryEntry", "DirectoryEntry"]
    first = root.find("DirectoryEntry[2]")
    assert first is not None and [c.tag for c in first] == ["Name", "Telephone", "Telephone"]
    assert texts(root, "DirectoryEntry/Name") == ["Carol King", "Jürgen Müller", "Reception"]
    assert texts(root, "DirectoryEntry[2]/Telephone") == ["03012344711", "01701112233"]


def test_yealink_remote_phone_book_template() -> None:
    root = render("yealink-book")
    assert root.tag == "YealinkIPPhoneBook"
    assert [e.tag for e in root] == ["Title", "Menu"]
    menu = root.find("Menu")
    assert menu is not None and menu.get("Name") == "Phonebook"
    units = [(u.get("Name"), u.get("Phone1"), u.get("Phone2"), u.get("Phone3")) for u in menu]
    assert units == [("Carol King", "0012125550199", "", ""), ("Jürgen Müller", "03012344711", "01701112233", ""),
                     ("Reception", "4711", "", "")]
    assert all(set(u.attrib) == {"Name", "Phone1", "Phone2", "Phone3", "default_photo"} and not list(u)
               for u in menu)


def test_yealink_book_puts_office_mobile_other_in_phone1_to_3_and_fills_a_free_slot() -> None:
    home_only = entry("H", ("home", "030 111"))
    four = entry("F", ("business", "030 12341"), ("mobile", "0170 12342"), ("home", "030 12343"),
                 ("pager", "030 12344"))
    mobile_and_home = entry("M", ("mobile", "0170 12345"), ("home", "030 12346"))
    units = [[u.get(f"Phone{i}") for i in (1, 2, 3)] for u in render("yealink-book", (home_only, four, mobile_and_home))
             .iterfind("Menu/Unit")]
    assert units == [["030111", "", ""], ["03012341", "017012342", "03012343"], ["03012346", "017012345", ""]]


def test_fanvil_directory_has_a_name_and_up_to_three_numbers_by_kind() -> None:
    root = render("fanvil")
    assert root.tag == "FanvilIPPhoneDirectory"
    assert texts(root, "DirectoryEntry/Name") == ["Carol King", "Jürgen Müller", "Reception"]
    assert [e.tag for e in root] == ["DirectoryEntry"] * 3
    jm = root.find("DirectoryEntry[2]")
    assert jm is not None and [(c.tag, c.text) for c in jm] == [
        ("Name", "Jürgen Müller"), ("Telephone", "03012344711"), ("Mobile", "01701112233")]
    four = entry("F", ("business", "030 12341"), ("mobile", "0170 12342"), ("home", "030 12343"),
                 ("pager", "030 12344"))
    only_home = entry("H", ("home", "030 12346"))
    fanvil = render("fanvil", (four, only_home))
    assert [[(c.tag, c.text) for c in e][1:] for e in fanvil.iterfind("DirectoryEntry")] == [
        [("Telephone", "03012341"), ("Mobile", "017012342"), ("Other", "03012343")], [("Telephone", "03012346")]]


def test_snom_minibrowser_directory_lists_one_entry_per_number() -> None:
    root = render("snom")
    assert root.tag == "SnomIPPhoneDirectory"
    assert texts(root, "DirectoryEntry/Name") == ["Carol King", "Jürgen Müller (business)",
                                                  "Jürgen Müller (mobile)", "Reception"]
    assert all([c.tag for c in e] == ["Name", "Telephone"] for e in root.iterfind("DirectoryEntry"))


def test_snom_tbook_version_2() -> None:
    root = render("snom-tbook")
    assert (root.tag, root.get("e"), root.get("version"), root.get("complete")) == ("tbook", "2", "2.0", "true")
    contact = root.find("contact[2]")
    assert contact is not None
    assert [c.tag for c in contact] == ["first_name", "last_name", "organization", "numbers"]
    assert [(n.get("no"), n.get("type"), n.get("outgoing_id")) for n in contact.iterfind("numbers/number")] == [
        ("03012344711", "business", "0"), ("01701112233", "mobile", "0")]
    assert texts(root, "contact[3]/last_name") == ["Reception"]  # known by one name only


def test_grandstream_address_book() -> None:
    root = render("grandstream")
    assert root.tag == "AddressBook"
    contact = root.find("Contact[2]")
    assert contact is not None and [c.tag for c in contact] == ["LastName", "FirstName", "Phone", "Phone"]
    assert texts(contact, "Phone/phonenumber") == ["03012344711", "01701112233"]
    assert texts(contact, "Phone/accountindex") == ["0", "0"]


def test_cisco_directory_with_soft_keys() -> None:
    root = render("cisco")
    assert root.tag == "CiscoIPPhoneDirectory"
    assert [e.tag for e in root][:2] == ["Title", "Prompt"]
    assert texts(root, "Prompt") == ["1-4 of 4"]
    assert all([c.tag for c in e] == ["Name", "Telephone"] for e in root.iterfind("DirectoryEntry"))
    keys = [(k.findtext("Name"), k.findtext("URL"), k.findtext("Position")) for k in root.iterfind("SoftKeyItem")]
    assert keys == [("Dial", "SoftKey:Dial", "1"), ("EditDial", "SoftKey:EditDial", "2"),
                    ("Search", "http://pbx:8089/cisco.xml?search=1", "3"), ("Exit", "SoftKey:Exit", "4")]


def test_cisco_search_form() -> None:
    root = render("cisco-search")
    assert root.tag == "CiscoIPPhoneInput"
    assert [e.tag for e in root] == ["Title", "Prompt", "URL", "InputItem"]
    assert texts(root, "InputItem/QueryStringParam") == ["q"]
    assert texts(root, "URL") == ["http://pbx:8089/cisco-search.xml"]


def test_gigaset_list() -> None:
    root = render("gigaset")
    assert (root.tag, root.get("response"), root.get("type")) == ("list", "get_list", "pr")
    assert (root.get("total"), root.get("first"), root.get("last")) == ("3", "1", "3")
    jm = root.find("entry[2]")
    assert jm is not None and [(c.tag, c.text) for c in jm] == [
        ("ln", "Müller"), ("fn", "Jürgen"), ("hm", "03012344711"), ("mb", "01701112233")]


# ---- against the vendors' published structures ---------------------------------------------------------
# Skeletons of the examples each source publishes (docs/phones.md names title and URL); `optional` are the
# parts a book may leave out (no company, no second number, no link to a next page).

PUBLISHED: dict[str, tuple[str, set[str]]] = {
    # Cisco, IP Phone Services Application Development Notes, "CiscoIPPhone XML Objects"
    "cisco": ("<CiscoIPPhoneDirectory><Title/><Prompt/><DirectoryEntry><Name/><Telephone/></DirectoryEntry>"
              "<SoftKeyItem><Name/><URL/><Position/></SoftKeyItem></CiscoIPPhoneDirectory>", set()),
    "cisco-search": ("<CiscoIPPhoneInput><Title/><Prompt/><URL/><InputItem><DisplayName/><QueryStringParam/>"
                     "<DefaultValue/><InputFlags/></InputItem></CiscoIPPhoneInput>", set()),
    # Snom service wiki, "Remote XML Directory" and "Local Directory (new XML format)"
    "snom-tbook": ("<tbook e='2' version='2.0' complete='true'><contact fav='' vip='' blocked=''><first_name/>"
                   "<last_name/><organization/><numbers><number no='' type='' outgoing_id=''/></numbers></contact>"
                   "</tbook>", {"tbook/contact/organization"}),
    # Snom wiki "Minibrowser": SnomIPPhoneDirectory, SoftKeyItem (Name = the key, URL; Label on context keys)
    "snom": ("<SnomIPPhoneDirectory><Title/><DirectoryEntry><Name/><Telephone/></DirectoryEntry>"
             "<SoftKeyItem><Label/><URL/><Name/></SoftKeyItem></SnomIPPhoneDirectory>",
             {"SnomIPPhoneDirectory/SoftKeyItem", "SnomIPPhoneDirectory/SoftKeyItem/Label",
              "SnomIPPhoneDirectory/SoftKeyItem/URL", "SnomIPPhoneDirectory/SoftKeyItem/Name"}),
    "snom-search": ("<SnomIPPhoneInput><Title/><Prompt/><URL/><InputItem><DisplayName/><QueryStringParam/>"
                    "<DefaultValue/><InputFlags/></InputItem></SnomIPPhoneInput>", set()),
    # Grandstream, XML Based Downloadable Phonebook Guide (GXP21xx/GXP14xx/GXP116x)
    "grandstream": ("<AddressBook><Contact><LastName/><FirstName/><Phone><phonenumber/><accountindex/></Phone>"
                    "</Contact></AddressBook>", set()),
    # Yealink administrator's guide, "Remote XML Phone Book" (xxxIPPhoneDirectory, DirectoryEntry); Title as
    # in Wazo's template
    "yealink": ("<YealinkIPPhoneDirectory><Title/><DirectoryEntry><Name/><Telephone/></DirectoryEntry>"
                "</YealinkIPPhoneDirectory>", set()),
    # Yealink's remote phone book template file (YealinkIPPhoneBook)
    "yealink-book": ("<YealinkIPPhoneBook><Title/><Menu Name=''><Unit Name='' Phone1='' Phone2='' Phone3=''"
                     " default_photo=''/></Menu></YealinkIPPhoneBook>", set()),
    # the generators that cite Fanvil's XML phonebook document
    "fanvil": ("<FanvilIPPhoneDirectory clearlight='true'><DirectoryEntry><Name/><Telephone/><Mobile/><Other/>"
               "</DirectoryEntry></FanvilIPPhoneDirectory>", {"FanvilIPPhoneDirectory/DirectoryEntry/Other"}),
    # Gigaset, Phonebook Search Protocol Specification / wiki "Online directory"
    "gigaset": ("<list response='get_list' type='pr' total='' first='' last=''><entry><ln/><fn/><hm/><mb/></entry>"
                "</list>", set()),
}


def shape(root: ET.Element, path: str = "") -> set[str]:
    """Every element path and attribute (`path@name`) a document holds."""
    here = f"{path}/{root.tag}" if path else root.tag
    found = {here} | {f"{here}@{name}" for name in root.attrib}
    for child in root:
        found |= shape(child, here)
    return found


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_document_has_the_published_structure(name: str) -> None:
    example, optional = PUBLISHED[name]
    published = shape(ET.fromstring(example))
    ours = shape(render(name, MANY if name in ("cisco", "snom") else BOOK))
    assert ours <= published, f"not in the published structure: {sorted(ours - published)}"
    assert published - optional <= ours, f"missing: {sorted(published - optional - ours)}"


def test_every_format_is_held_against_a_published_structure() -> None:
    assert set(PUBLISHED) == {*FORMATS, "cisco-search", "snom-search"}


# ---- paging and search -------------------------------------------------------------------------------

MANY = tuple(entry(f"Person {i:03d}", ("business", f"030 555 {i:04d}"), ("mobile", f"0170 555 {i:04d}"))
             for i in range(40))  # 80 lines: three Cisco pages


def test_cisco_pages_hold_32_lines_and_link_to_each_other() -> None:
    first = render("cisco", MANY)
    assert len(first.findall("DirectoryEntry")) == 32 and texts(first, "Prompt") == ["1-32 of 80"]
    urls = {k.findtext("Name"): k.findtext("URL") or "" for k in first.iterfind("SoftKeyItem")}
    assert "Prev" not in urls and parse_qs(urlsplit(urls["Next"]).query) == {"page": ["2"]}
    last = render("cisco", MANY, page="3")
    assert len(last.findall("DirectoryEntry")) == 16 and texts(last, "Prompt") == ["65-80 of 80"]
    urls = {k.findtext("Name"): k.findtext("URL") or "" for k in last.iterfind("SoftKeyItem")}
    assert "Next" not in urls and parse_qs(urlsplit(urls["Prev"]).query) == {"page": ["2"]}
    every = [n for p in ("1", "2", "3") for n in texts(render("cisco", MANY, page=p), "DirectoryEntry/Telephone")]
    assert len(every) == len(set(every)) == 80


def test_cisco_page_beyond_the_end_shows_the_last_page_and_hostile_page_numbers_the_first() -> None:
    assert texts(render("cisco", MANY, page="99"), "Prompt") == ["65-80 of 80"]
    for hostile in ("-1", "0", "x", "1e9", "٣", "9" * 50):
        assert texts(render("cisco", MANY, page=hostile), "Prompt") == ["1-32 of 80"]


def test_search_keeps_the_query_in_the_paging_links() -> None:
    root = render("cisco", MANY, q="person 0")
    next_url = next(k.findtext("URL") or "" for k in root.iterfind("SoftKeyItem") if k.findtext("Name") == "Next")
    assert parse_qs(urlsplit(next_url).query) == {"q": ["person 0"], "page": ["2"]}


def test_snom_minibrowser_pages_with_soft_keys_and_its_search_form() -> None:
    first = render("snom", MANY)
    assert len(first.findall("DirectoryEntry")) == 32
    keys = [(k.findtext("Label"), k.findtext("Name")) for k in first.iterfind("SoftKeyItem")]
    assert keys == [("Next", "F4")]
    middle = render("snom", MANY, page="2")
    assert [k.findtext("Name") for k in middle.iterfind("SoftKeyItem")] == ["F2", "F4"]
    form = render("snom-search")
    assert form.tag == "SnomIPPhoneInput" and [e.tag for e in form] == ["Title", "Prompt", "URL", "InputItem"]
    assert texts(form, "InputItem/QueryStringParam") == ["q"]


def test_gigaset_first_and_count() -> None:
    root = render("gigaset", MANY, first="11", count="5")
    assert (root.get("total"), root.get("first"), root.get("last")) == ("40", "11", "15")
    assert texts(root, "entry/ln") == [f"Person {i:03d}" for i in range(10, 15)]


def test_gigaset_answers_the_directory_type_it_was_asked_for() -> None:
    assert render("gigaset", type="pb").get("type") == "pb"
    assert render("gigaset", type="<x>").get("type") == "pr"


def test_gigaset_searches_by_its_name_and_number_parameters() -> None:
    assert texts(render("gigaset", ln="Mül*", fn="*"), "entry/ln") == ["Müller"]
    assert texts(render("gigaset", hm="4711"), "entry/ln") == ["Müller", "Reception"]


@pytest.mark.parametrize(("query", "found"), [
    ("müller", ["Jürgen Müller"]), ("MÜLLER jür", ["Jürgen Müller"]), ("acme", ["Jürgen Müller"]),
    ("555 0199", ["Carol King"]), ("4711", ["Jürgen Müller", "Reception"]), ("nobody", []), ("", None),
    ("+49 30 1234 4711", ["Jürgen Müller"]), ("0049 30 1234", ["Jürgen Müller"]), ("030 1234 4711", ["Jürgen Müller"]),
])
def test_yealink_search_by_name_or_number(query: str, found: list[str] | None) -> None:
    names = texts(render("yealink", q=query), "DirectoryEntry/Name")
    assert names == (found if found is not None else ["Carol King", "Jürgen Müller", "Reception"])


def test_matches_needs_every_word() -> None:
    assert matches(JM, "jürgen acme") and not matches(JM, "jürgen globex")


# ---- hostile names -----------------------------------------------------------------------------------

HOSTILE = ("<script>&amp;</script>", "A & B <C> \"D\" 'E'", "Bell\x07\x00\x1b[31m", "\u202eevil\u202c txt.exe",
           "\u2067Ali\u2069ce\u200f", "Tab\tand\nnewline", "\ud800lone surrogate", "\ufffe\uffffNon", "x" * 10_000)


@pytest.mark.parametrize("name", ["yealink", "yealink-book", "fanvil", "snom", "snom-tbook", "grandstream", "cisco",
                                  "gigaset"])
def test_hostile_names_give_well_formed_utf8_xml(name: str) -> None:
    entries = [entry(h, ("business", "030 1234"), given=h, surname=h, company=h) for h in HOSTILE]
    fmt = FORMATS[name]
    ask = ask_of(fmt, {})
    body = fmt.render(page_of(fmt, entries, ask, lambda p: link("http://pbx/x.xml", p)))
    body.decode("utf-8")  # strict: no lone surrogate got through
    root = ET.fromstring(body)  # well-formed: every value escaped, nothing XML 1.0 forbids
    shown = [e.text or "" for e in root.iter() if e.text] + [v for e in root.iter() for v in e.attrib.values()]
    joined = "".join(shown)
    for bad in ("\x00", "\x07", "\x1b", "\u202e", "\u2067", "\u200f", "\ufffe"):
        assert bad not in joined
    assert "<script>" in joined  # shown as text, not markup
    assert max(len(s) for s in shown) <= NAME_LIMIT + len(" (business)")


def test_hostile_query_parameters_are_bounded_and_never_raise() -> None:
    for q in ("\x00" * 10, "<&>" * 1000, "\ud800", "*" * 100, "% %%"):
        render("yealink", q=q)
        render("gigaset", hm=q, ln=q, fn=q, first=q, count=q)


@settings(max_examples=150, deadline=None)
@given(names=st.lists(st.text(max_size=300), min_size=1, max_size=5), query=st.text(max_size=20))
def test_any_names_and_queries_give_well_formed_documents_in_every_format(names: list[str], query: str) -> None:
    entries = [entry(n, ("business", "030 1234"), ("mobile", "0170 555"), given=n, surname=n[::-1], company=n)
               for n in names]
    for fmt in (*FORMATS.values(), CISCO_SEARCH, SNOM_SEARCH):
        ask = ask_of(fmt, {"q": query, "ln": query, "hm": query, "page": query, "first": query})
        body = fmt.render(page_of(fmt, searched(entries, ask.query), ask, lambda p: link("http://pbx/b.xml", p)))
        ET.fromstring(body.decode("utf-8"))


def test_the_name_is_the_cn_ldap_serves() -> None:
    def name(display: str, given: str, surname: str, emails: str) -> str:
        row = ContactRow("alice@example.com", "id1", display, given, surname, "", "", emails)
        return book_entry(row, [phone("business", "030 1234")], NATIONAL).name

    assert name(" Dr. Anna\tWeiß ", "Anna", "Weiß", "[]") == "Dr. Anna Weiß"
    assert name("", "Anna", "Weiß", "[]") == "Anna Weiß"
    assert name("", "", "", '["anna@example.org"]') == "anna@example.org"
