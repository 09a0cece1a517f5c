"""Search as you type over the contacts (the portal's *My contacts*), through the trigram index of the
`contact_search` migration (0013): any part of a name, company or e-mail address, or of a
number in any of the forms `sync.phones.search_forms` gives for what was typed.

A query of three or more characters is a substring search in the index; a shorter one (trigrams need
three) only matches names that start with it, through the display-name index. Each term is one FTS5
string ("..." with quotes doubled), so nothing typed is read as query syntax.

The index is read in its own (rowid) order and stops after SCAN_LIMIT matches, which are then sorted by
name: a term nearly every contact shares ("com", a common area code) costs the same as a rare one,
instead of reading and sorting every match (100k contacts: ~1 ms instead of ~100 ms). With more matches
than that, the answer is the first SCAN_LIMIT found, sorted, and the caller says there are more: the
user types on to narrow it, as with any search as you type.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from pbxsync.sync.store.contacts import StoredContact, hydrate_rows
from pbxsync.sync.store.db import Store

TRIGRAM = 3
SCAN_LIMIT = 500  # index matches read at most; more than a search-as-you-type answer shows


def printable(text: str) -> str:
    """Without control and format characters (a NUL would end the FTS5 string early), trimmed."""
    return "".join(ch for ch in text if ch.isprintable() or ch == " ").strip()


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def match_expression(text: str, number_forms: Sequence[str]) -> str:
    """The FTS5 query: the text in the names, or any number form in the numbers."""
    terms = [f"names : {_fts_string(text)}"] if len(text) >= TRIGRAM else []
    terms += [f"numbers : {_fts_string(form)}" for form in number_forms if len(form) >= TRIGRAM]
    return " OR ".join(terms)


async def find_contacts(store: Store, text: str, number_forms: Sequence[str], limit: int, *,
                        mailboxes: Collection[str] | None = None) -> list[StoredContact]:
    """Contacts (of `mailboxes` only, unless None) matching `text` or a number form, by name."""
    text = printable(text)
    number_forms = [printable(f) for f in number_forms]
    visible = "" if mailboxes is None else " AND c.mailbox IN (SELECT value FROM json_each(?))"
    only = [] if mailboxes is None else [json.dumps(sorted(mailboxes))]
    if len(text) >= TRIGRAM:
        # The visible-mailbox check inside the scan, so the SCAN_LIMIT are all the user's to see.
        where = (f"c.id IN (SELECT s.rowid FROM contact_search s JOIN contacts c ON c.id = s.rowid "
                 f"WHERE contact_search MATCH ?{visible} LIMIT {SCAN_LIMIT})")
        args: list[object] = [match_expression(text, number_forms), *only]
    elif text:
        where = f"c.display_name >= ? COLLATE NOCASE AND c.display_name < ? COLLATE NOCASE{visible}"
        args = [text, text + "\U0010ffff", *only]
    else:
        return []
    return await hydrate_rows(store, f"WHERE {where}", args, limit)
