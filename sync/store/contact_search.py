"""Search as you type over the contacts (the portal's *My contacts*), through the trigram index of the
`contact_search` migration (0013): any part of a name, company or e-mail address, or of a
number in any of the forms `sync.phones.search_forms` gives for what was typed.

A query of three or more characters is a substring search in the index; a shorter one (trigrams need
three) only matches names that start with it, through the display-name index. Each term is one FTS5
string ("..." with quotes doubled), so nothing typed is read as query syntax.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from pbxsync.sync.store.contacts import StoredContact, hydrate_rows
from pbxsync.sync.store.db import Store

TRIGRAM = 3


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
    args: list[object] = []
    if len(text) >= TRIGRAM:
        where = "c.id IN (SELECT rowid FROM contact_search WHERE contact_search MATCH ?)"
        args.append(match_expression(text, number_forms))
    elif text:
        where = "c.display_name >= ? COLLATE NOCASE AND c.display_name < ? COLLATE NOCASE"
        args += [text, text + "\U0010ffff"]
    else:
        return []
    if mailboxes is not None:
        where += " AND c.mailbox IN (SELECT value FROM json_each(?))"
        args.append(json.dumps(sorted(mailboxes)))
    return await hydrate_rows(store, f"WHERE {where} ORDER BY c.display_name COLLATE NOCASE, c.id LIMIT ?",
                              (*args, limit))
