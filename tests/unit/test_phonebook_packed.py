"""The phonebook's memory-saving forms give exactly what the plain ones give: a packed entry unpacks to
the same `BookEntry`, a book held packed is searched and paged alike, and a listing rendered from kept
per-contact fragments is byte for byte the document rendered whole. Pure: no server, no store."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxsync.plugin.ldap.build import ContactRow, PhoneRow
from pbxsync.plugin.ldap.numbers import NumberForms
from pbxsync.plugin.phonebook.book import Entries
from pbxsync.plugin.phonebook.entries import BookEntry, Dialer, book_entry, pack, unpack
from pbxsync.plugin.phonebook.fragments import Fragments
from pbxsync.plugin.phonebook.pages import FORMATS, ask_of, link, page_of, searched

DIALER = Dialer(NumberForms("DE"), "national", "0")
KINDS = ("business", "mobile", "home", "other", "pager", "fax", "odd")
HOSTILE = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\x1e\x1f\x00<&>\u202e"), max_size=40)


def entry(name: str, given: str = "", surname: str = "", company: str = "",
          phones: tuple[tuple[str, str], ...] = (("business", "+49 30 1234 4711"),)) -> BookEntry:
    row = ContactRow("alice@example.com", "id-" + name[:20], name, given, surname, company, "", "[]")
    return book_entry(row, [PhoneRow(kind, raw, None, "") for kind, raw in phones], DIALER)


@settings(max_examples=200, deadline=None)
@given(name=HOSTILE, given_name=HOSTILE, surname=HOSTILE, company=HOSTILE,
       phones=st.lists(st.tuples(st.sampled_from(KINDS), st.from_regex(r"\+?[0-9 ]{0,16}", fullmatch=True)),
                       max_size=4))
def test_a_packed_entry_unpacks_to_the_same_entry(name: str, given_name: str, surname: str, company: str,
                                                  phones: list[tuple[str, str]]) -> None:
    original = entry(name, given_name, surname, company, tuple(phones))
    assert unpack(pack(original)) == original


BOOK = [entry(f"Name {i} <&> Müller", f"Given{i}", f"Müller{i}", "ACME & Co" if i % 2 else "",
              (("business", f"+49 30 1234 {i:04d}"), ("mobile", f"0171 555 {i:04d}"))) for i in range(40)]
BOOK.append(entry("Reception", phones=(("business", "4711"),)))


def test_a_packed_book_searches_and_pages_like_a_list() -> None:
    packed = Entries(tuple(pack(e) for e in BOOK))
    assert list(packed) == BOOK and len(packed) == len(BOOK) and packed[3] == BOOK[3]
    assert list(packed[5:9]) == BOOK[5:9]
    for query in ("", "given1", "müller 2", "1234 0007", "+49 30 1234 0012", "4711", "nobody"):
        assert list(searched(packed, query)) == list(searched(BOOK, query)), query


def test_a_listing_joined_from_kept_fragments_is_the_document_rendered_whole() -> None:
    fragments = Fragments(1024 * 1024)
    packed = Entries(tuple(pack(e) for e in BOOK))
    listings = [fmt for fmt in FORMATS.values() if fmt.listing is not None]
    assert {fmt.name for fmt in listings} == {"yealink", "fanvil", "snom-tbook", "grandstream", "gigaset"}
    for _ in range(2):  # rendered, then joined from what was kept
        for fmt in listings:
            for params in ({}, {"q": "given1"}, {"q": "nobody"}, {"first": "7", "count": "5"}):
                ask = ask_of(fmt, params)
                whole = fmt.render(page_of(fmt, searched(BOOK, ask.query), ask, lambda p: link("http://pbx/b", p)))
                page = page_of(fmt, searched(packed, ask.query), ask, lambda p: link("http://pbx/b", p))
                assert isinstance(page.entries, Entries)
                assert fmt.listing is not None
                assert fragments.render(fmt.listing, page, page.entries.packed) == whole, (fmt.name, params)
    assert 0 < fragments.size <= fragments.limit


def test_kept_fragments_stay_within_their_limit() -> None:
    fragments = Fragments(4096)
    packed = Entries(tuple(pack(e) for e in BOOK))
    fmt = FORMATS["yealink"]
    assert fmt.listing is not None
    page = page_of(fmt, packed, ask_of(fmt, {}), lambda p: "")
    whole = fmt.render(page_of(fmt, BOOK, ask_of(fmt, {}), lambda p: ""))
    for _ in range(3):
        assert fragments.render(fmt.listing, page, packed.packed) == whole
        assert fragments.size <= 4096
    assert Fragments(0).render(fmt.listing, page, packed.packed) == whole  # cache_mb = 0: kept nowhere
