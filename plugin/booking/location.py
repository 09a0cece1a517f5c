"""The Location grammar: which meetings are conferences, and which ones auto-dial.

    location := entry (";" entry)*
    entry    := space* "PBX" (space+ "AUTOCALL")? (space+ anything)? space*     -- a conference
              | anything else                                                  -- not a conference

Words are separated by any Unicode white space (NBSP, em space, ideographic space, ...). Invisible
format characters (zero-width space, BOM, word joiner, ...) are dropped first, because they come from
copy and paste, not from intent. Each entry is NFKC-normalized, so full-width `ＰＢＸ` (typed with an
East Asian input method) counts; look-alike letters from other scripts (Cyrillic `РВХ`, Greek `ΡΒΧ`)
do not, as NFKC keeps them in their script. `PBX` and `AUTOCALL` are matched case-insensitively.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

CONFERENCE_WORD = "pbx"
AUTOCALL_WORD = "autocall"
MAX_LOCATION_CHARS = 10_000  # Exchange allows 255; anything longer is hostile, only its head is read


@dataclass(frozen=True)
class ConferenceRequest:
    autocall: bool
    entry: str  # the normalized entry that asked for it


def _words(entry: str) -> list[str]:
    visible = "".join(ch for ch in entry if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", visible).split()


def parse_entry(entry: str) -> ConferenceRequest | None:
    words = _words(entry)
    if not words or words[0].casefold() != CONFERENCE_WORD:
        return None
    autocall = len(words) > 1 and words[1].casefold() == AUTOCALL_WORD
    return ConferenceRequest(autocall=autocall, entry=" ".join(words))


def parse_location(location: str) -> ConferenceRequest | None:
    """The conference a Location asks for, or None. Several PBX entries: AUTOCALL if any asks for it."""
    found: ConferenceRequest | None = None
    for entry in location[:MAX_LOCATION_CHARS].split(";"):
        request = parse_entry(entry)
        if request is None:
            continue
        if found is None or (request.autocall and not found.autocall):
            found = request
    return found
