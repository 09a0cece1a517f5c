"""Invited groups over Microsoft Graph: the group by its address, then its people.

A Microsoft 365 group, a distribution group and a mail-enabled security group are all `/groups`: the
group is found with `$filter=mail eq '...'` and its people read from `transitiveMembers` (nested groups
flattened by Graph; other members, such as organisational contacts and devices, are left out). Needs the
application permission GroupMember.Read.All (docs/exchange-online-graph.md).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from pbxsync.sync.errors import SourceDataError
from pbxsync.sync.model import GroupMembers
from pbxsync.sync.sources.graph_client import GraphClient
from pbxsync.sync.sources.graph_mapping import clean_text

USER_TYPE = "#microsoft.graph.user"


async def find_group(client: GraphClient, mailbox: str, address: str, max_members: int,
                     max_pages: int) -> GroupMembers | None:
    """The people of the group `address` (requests counted against `mailbox`), or None: no such group."""
    wanted = address.strip().lower()
    escaped = wanted.replace("'", "''")  # an OData string literal doubles its quotes
    url = client.url("/groups?" + urlencode({"$filter": f"mail eq '{escaped}'", "$select": "id,displayName,mail"}))
    found = (await client.get_json(mailbox, url)).get("value")
    if not isinstance(found, list) or not all(isinstance(g, dict) for g in found):
        raise SourceDataError(f"Graph: the group lookup for {mailbox} has no usable value list")
    if not found:
        return None
    group_id, name = found[0].get("id"), found[0].get("displayName")
    if not isinstance(group_id, str) or not group_id or len(group_id) > 200:
        raise SourceDataError(f"Graph: a group for {mailbox} has no usable id")
    label = clean_text(name, 256) if isinstance(name, str) else ""
    members: dict[str, None] = {}
    url = client.url(f"/groups/{quote(group_id, safe='')}/transitiveMembers?"
                     + urlencode({"$select": "id,mail", "$top": "999"}))
    for _ in range(max_pages):
        page = await client.get_json(mailbox, url)
        value = page.get("value")
        if not isinstance(value, list):
            raise SourceDataError(f"Graph: the members of a group for {mailbox} are not a list")
        for member in value:
            if not isinstance(member, dict) or member.get("@odata.type") != USER_TYPE:
                continue
            mail = member.get("mail")
            if not isinstance(mail, str) or "@" not in mail:
                continue
            members.setdefault(clean_text(mail, 320).lower(), None)
            if len(members) > max_members:
                return GroupMembers(wanted, label, tuple(members), complete=False)
        if "@odata.nextLink" not in page:
            return GroupMembers(wanted, label, tuple(members))
        url = client.check_link(page["@odata.nextLink"], "nextLink")
    raise SourceDataError(f"Graph: more than {max_pages} pages of group members for {mailbox}")
