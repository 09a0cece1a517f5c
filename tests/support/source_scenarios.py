"""Behaviour every Exchange source must show, run by the EWS and the Graph source tests alike."""

from __future__ import annotations

from pbxsync.sync.simulator.mailboxes import ContactRecord, Organisation, Phone
from pbxsync.sync.sources.base import MailboxSource

ALICE = "alice@example.com"


async def contacts_create_update_delete(source: MailboxSource, org: Organisation) -> None:
    """A first full sync, then a create, an update and a delete in Exchange, then a sync with no change."""
    first = await source.sync_contacts(ALICE, "")
    assert first.complete and first.deleted_item_ids == ()
    names = {c.display_name: c for c in first.upserts}
    assert set(names) == {"Zoë Müller", "Hans Hotline"}
    zoe = names["Zoë Müller"]
    assert (zoe.company, zoe.title, zoe.emails) == ("Acme GmbH", "CFO", ("zoe@acme.example",))
    assert {(p.kind.value, p.e164) for p in zoe.phones} == {("business", "+493012344711"),
                                                            ("mobile", "+491712345678")}
    added = org.add_contact(ALICE, ContactRecord("", "", "New Person", phones=(Phone("mobile", "0151 1111"),)))
    org.update_contact(ALICE, zoe.item_id, company="Acme AG")
    org.delete_contact(ALICE, names["Hans Hotline"].item_id)
    second = await source.sync_contacts(ALICE, first.sync_state)
    assert {c.display_name: c.company for c in second.upserts} == {"Zoë Müller": "Acme AG", "New Person": ""}
    assert second.deleted_item_ids == (names["Hans Hotline"].item_id,)
    assert added.item_id in {c.item_id for c in second.upserts}
    third = await source.sync_contacts(ALICE, second.sync_state)
    assert third.upserts == () and third.deleted_item_ids == ()
