"""What one request asks of a book, per format: the search, the page, the links; all pure.

- Every format takes `q` (a name or number search, see plugin.phonebook.entries.matches).
- Cisco and Snom's minibrowser are paged by `page` (1-based, 32 lines each: one per number) with
  Prev/Next soft keys (Cisco: and Search); `?search=1` is their search form (CiscoIPPhoneInput,
  SnomIPPhoneInput), which sends `q` back to the directory.
- Gigaset asks with its own parameters: `first` (1-based) and `count`, names in `ln`/`fn` and a number
  in `hm` (its online-directory lookup), `*` as wildcard.
- The others get the whole (searched) book.

Query values are hostile: they are bounded, and only ever compared, never put into a document unescaped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from pbxsync.plugin.phonebook import formats
from pbxsync.plugin.phonebook.book import Entries
from pbxsync.plugin.phonebook.entries import BookEntry, clean_text, matches
from pbxsync.plugin.phonebook.formats import Links, PageOf, Renderer

MAX_QUERY = 64  # characters of a search; a phone sends a few
GIGASET_TYPES = ("pb", "pr", "yp")  # public, private and yellow-pages directories


@dataclass(frozen=True)
class Format:
    name: str  # the URL's /<name>.xml
    render: Renderer
    paging: str = ""  # "" | "lines" (by `page`, with links) | "gigaset" (first/count)
    search_form: Format | None = None  # served for `?search=1`
    page_size: int = 0
    links: bool = False  # the document holds absolute links back (paging soft keys, a form's target)
    listing: formats.Listing | None = None  # one element per entry: rendered from kept fragments


CISCO_SEARCH = Format("cisco-search", formats.cisco_search, links=True)
SNOM_SEARCH = Format("snom-search", formats.snom_search, links=True)
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("yealink", formats.yealink, listing=formats.YEALINK),
    Format("yealink-book", formats.yealink_book),
    Format("snom", formats.snom, "lines", SNOM_SEARCH, formats.SNOM_PAGE, links=True),
    Format("snom-tbook", formats.snom_tbook, listing=formats.SNOM_TBOOK),
    Format("grandstream", formats.grandstream, listing=formats.GRANDSTREAM),
    Format("cisco", formats.cisco, "lines", CISCO_SEARCH, formats.CISCO_PAGE, links=True),
    Format("fanvil", formats.fanvil, listing=formats.FANVIL),
    Format("gigaset", formats.gigaset, "gigaset", listing=formats.GIGASET),
)}
SEARCH_FORMS = (CISCO_SEARCH, SNOM_SEARCH)


@dataclass(frozen=True)
class Ask:
    """One request's search and page, normalised (part of the cache key and ETag)."""

    query: str = ""
    start: int = 0  # 0-based offset of the first entry or line
    count: int = 0  # 0 = all
    list_type: str = ""  # Gigaset: the directory type asked for, answered in kind

    @property
    def key(self) -> str:
        return f"{self.query}\0{self.start}\0{self.count}\0{self.list_type}"


def _int(text: str | None, default: int, low: int, high: int) -> int:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 9:
        return default
    return max(low, min(high, int(text)))


def _term(text: str | None) -> str:
    return clean_text((text or "").replace("*", " "), MAX_QUERY)


def ask_of(fmt: Format, params: Mapping[str, str]) -> Ask:
    query = _term(params.get("q"))
    if fmt.paging == "lines":
        page = _int(params.get("page"), 1, 1, 1_000_000)
        return Ask(query, (page - 1) * fmt.page_size, fmt.page_size)
    if fmt.paging == "gigaset":
        number = _term(params.get("hm"))
        names = " ".join(t for t in (_term(params.get("ln")), _term(params.get("fn"))) if t)
        first = _int(params.get("first"), 1, 1, 1_000_000)
        count = _int(params.get("count"), formats.GIGASET_PAGE, 1, formats.GIGASET_PAGE)
        list_type = params.get("type", "")
        return Ask(query or number or names, first - 1, count, list_type if list_type in GIGASET_TYPES else "pr")
    return Ask(query)


def searched(entries: Sequence[BookEntry], query: str) -> Sequence[BookEntry]:
    if not query:
        return entries
    if isinstance(entries, Entries):  # a book's: stays packed, for plugin.phonebook.fragments
        return entries.matching(query)
    return [e for e in entries if matches(e, query)]


def page_of(fmt: Format, entries: Sequence[BookEntry], ask: Ask, url: Callable[[dict[str, str]], str]) -> PageOf:
    """The page `ask` wants of the (already searched) `entries`; `url(params)` makes an absolute link."""
    if fmt.paging == "lines":
        return _line_page(entries, ask, url)
    if fmt.paging == "gigaset":
        return PageOf(entries[ask.start:ask.start + ask.count], len(entries), ask.start, list_type=ask.list_type)
    if fmt in SEARCH_FORMS:
        return PageOf((), 0, 0, Links(results=url({})))
    return PageOf(entries, len(entries), 0)


def _line_page(entries: Sequence[BookEntry], ask: Ask, url: Callable[[dict[str, str]], str]) -> PageOf:
    """Pages of lines (one per number): Cisco shows 32 DirectoryEntry items at most."""
    every = formats.lines(entries)
    total = len(every)
    start = min(ask.start, max(total - 1, 0)) // ask.count * ask.count
    page = start // ask.count + 1
    query = {"q": ask.query} if ask.query else {}
    links = Links(previous=url({**query, "page": str(page - 1)}) if page > 1 else "",
                  next=url({**query, "page": str(page + 1)}) if start + ask.count < total else "",
                  search=url({"search": "1"}))
    return PageOf((), total, start, links, every[start:start + ask.count])


def link(base: str, params: dict[str, str]) -> str:
    return f"{base}?{urlencode(params)}" if params else base
