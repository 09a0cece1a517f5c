"""Where a meeting is, as one line: the Location line plus the places Outlook keeps beside it.

Outlook's location picker ("enhanced locations") stores each chosen place separately (Graph
`locations[]`, EWS `EnhancedLocation`) and usually, but not always, also joins them into the Location
line. Both sources read every place into one line, so `PBX` picked as a location counts like `PBX` typed.
"""

from __future__ import annotations

from collections.abc import Iterable

LOCATION_SEPARATOR = "; "  # how Outlook joins several locations into one Location line


def join_locations(line: str, places: Iterable[str], limit: int = 1024) -> str:
    """`line` as Outlook wrote it, plus every place it does not already list, joined the way Outlook
    joins them; cut at `limit` characters (a location is displayed and parsed, never kept whole)."""
    text = line
    listed = [p.strip() for p in line.split(";") if p.strip()]
    for place in places:
        for entry in (p.strip() for p in place.split(";")):
            if entry and entry not in listed:
                listed.append(entry)
                text = f"{text}{LOCATION_SEPARATOR}{entry}" if text else entry
    return text[:limit]
