"""Graph's view of the simulated groups: `/groups?$filter=mail eq '...'` and
`/groups/{id}/transitiveMembers`, shaped like Microsoft's published examples (directoryObject rows typed
by `@odata.type`: users, nested groups, organisational contacts). Reading them needs the application
permission GroupMember.Read.All; a missing grant is simulated with an injected "access_denied" fault on
the operation "groups".
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from pbxsync.sync.simulator.graph_json import HttpError, error_body
from pbxsync.sync.simulator.groups import GroupRecord
from pbxsync.sync.simulator.organisation import Organisation

_MAIL_EQ = re.compile(r"^\s*mail\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
MAX_TOP = 999
DEFAULT_TOP = 100


def _object_id(kind: str, address: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{kind}|{address}".encode()).digest()[:16]))


def group_json(group: GroupRecord) -> dict[str, Any]:
    unified = group.kind == "m365"
    return {"id": group.object_id, "displayName": group.name, "mail": group.email,
            "mailEnabled": True, "securityEnabled": group.kind == "security",
            "groupTypes": ["Unified"] if unified else [], "mailNickname": group.email.split("@")[0]}


def find_groups(org: Organisation, endpoint: str, query: dict[str, str]) -> dict[str, Any]:
    """GET /groups?$filter=mail eq 'x' (the one filter pbxsync uses; the literal's quotes doubled)."""
    match = _MAIL_EQ.match(query.get("$filter", ""))
    if match is None:
        raise HttpError(400, error_body("Request_UnsupportedQuery", "Unsupported Query."))
    group = org.groups.get(match.group(1).replace("''", "'"))
    return {"@odata.context": f"{endpoint}/$metadata#groups", "value": [group_json(group)] if group else []}


def transitive_members(org: Organisation, endpoint: str, group_id: str, query: dict[str, str]) -> dict[str, Any]:
    """GET /groups/{id}/transitiveMembers: everyone below the group, nested groups listed and flattened."""
    group = org.groups.by_object_id(group_id)
    if group is None:
        raise HttpError(404, error_body("Request_ResourceNotFound",
                                        f"Resource '{group_id[:40]}' does not exist or one of its queried "
                                        "reference-property objects are not present."))
    people, nested = org.groups.transitive(group.email)
    rows: list[dict[str, Any]] = [group_json(g) | {"@odata.type": "#microsoft.graph.group"} for g in nested]
    for address in people:
        user = org.user(address)
        if user is not None:
            rows.append({"@odata.type": "#microsoft.graph.user", "id": _object_id("user", address),
                         "displayName": user.name, "mail": user.email, "userPrincipalName": user.email})
        else:
            rows.append({"@odata.type": "#microsoft.graph.orgContact", "id": _object_id("contact", address),
                         "displayName": address, "mail": address})
    try:
        top = max(1, min(MAX_TOP, int(query.get("$top", DEFAULT_TOP))))
        offset = max(0, int(query.get("$skiptoken", "0")))
    except ValueError:
        raise HttpError(400, error_body("BadRequest", "Invalid paging value.")) from None
    body: dict[str, Any] = {"@odata.context": f"{endpoint}/$metadata#directoryObjects",
                            "value": rows[offset:offset + top]}
    if offset + top < len(rows):
        more = {k: v for k, v in query.items() if k != "$skiptoken"} | {"$skiptoken": str(offset + top)}
        body["@odata.nextLink"] = f"{endpoint}/groups/{group_id}/transitiveMembers?{urlencode(more)}"
    return body
