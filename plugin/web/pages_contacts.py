"""*My contacts*: search the phonebook the user's phone sees (LDAP), and click to call.

The page works without script: a GET form, results rendered here. With script (static/contacts.js) the
results follow the typing through `/my/contacts/search.json`. Only the contacts of the mailboxes
`plugin.directory.visible_mailboxes` gives the user are found, and a call is only placed for a number of
such a contact: the form sends the contact's id and the number's place, never a number.
"""

from __future__ import annotations

import logging

from aiohttp import web

from pbxsync.plugin.directory import visible_mailboxes
from pbxsync.plugin.web.auth import WebUser, require_user
from pbxsync.plugin.web.click_to_call import admit_call, call_request, dialable, start_call
from pbxsync.plugin.web.contact_view import ContactView, contact_view
from pbxsync.plugin.web.context import WebContext, web_context
from pbxsync.plugin.web.render import NavLink, render
from pbxsync.sync.errors import ValidationError
from pbxsync.sync.phones import search_forms
from pbxsync.sync.store.contact_search import find_contacts
from pbxsync.sync.store.contacts import StoredContact, contact_by_id

log = logging.getLogger("pbxsync.web")

NAV = (NavLink("My contacts", "/my/contacts"),)
MAX_QUERY = 100
SHOWN = 50  # contacts per answer; "more" says when there were more
MIN_QUERY = 2  # characters before anything is searched


def routes() -> list[web.RouteDef]:
    return [web.get("/my/contacts", contacts_page), web.get("/my/contacts/search.json", contacts_json),
            web.post("/my/contacts/call", call_contact)]


async def find(ctx: WebContext, user: WebUser, query: str) -> tuple[list[ContactView], bool]:
    """The user's visible contacts matching `query` (name, company or any form of a number)."""
    text = " ".join(query.split())[:MAX_QUERY]
    if len(text) < MIN_QUERY:
        return [], False
    region = ctx.config.sync.default_region
    found = await find_contacts(ctx.store, text, search_forms(text, region), SHOWN + 1,
                                mailboxes=visible_mailboxes(ctx.config, user.extension))
    return [contact_view(c) for c in found[:SHOWN]], len(found) > SHOWN


async def contacts_page(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    return await _page(request, user, request.query.get("q", ""))


async def _page(request: web.Request, user: WebUser, query: str, message: str = "", ok: bool = True,
                status: int = 200) -> web.StreamResponse:
    contacts, more = await find(web_context(request), user, query)
    return render(request, "contacts.html", title="My contacts", query=query[:MAX_QUERY], contacts=contacts,
                  more=more, searched=len(query.strip()) >= MIN_QUERY, message=message, ok=ok, status=status)


async def contacts_json(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    query = request.query.get("q", "")
    contacts, more = await find(web_context(request), user, query)
    return web.json_response({"query": query[:MAX_QUERY], "contacts": [c.as_json() for c in contacts],
                              "more": more})


async def _visible_contact(ctx: WebContext, user: WebUser, raw_id: str) -> StoredContact | None:
    if not raw_id.isascii() or not raw_id.isdigit() or len(raw_id) > 18:
        return None
    found = await contact_by_id(ctx.store, int(raw_id))
    mailboxes = visible_mailboxes(ctx.config, user.extension)
    if found is None or (mailboxes is not None and found.mailbox not in mailboxes):
        return None  # another user's private contact is "not found", like one that does not exist
    return found


async def call_contact(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    ctx = web_context(request)
    form = await request.post()
    query = str(form.get("q", ""))[:MAX_QUERY]
    stored = await _visible_contact(ctx, user, str(form.get("contact", "")))
    if stored is None:
        return await _page(request, user, query, "That contact is not in your phonebook.", False, 404)
    index = str(form.get("number", ""))
    phones = stored.contact.phones
    if not (index.isascii() and index.isdigit() and len(index) <= 4 and int(index) < len(phones)):
        return await _page(request, user, query, "That number is not one of the contact's.", False, 400)
    name = contact_view(stored).name
    try:
        number = dialable(phones[int(index)])
    except ValidationError:
        return await _page(request, user, query, "This number cannot be dialled.", False, 400)
    try:
        request_ = call_request(ctx.config, user.extension, number, name)
    except ValidationError:  # the extension does not fit [pbx] dial
        log.error("click to call: extension %s cannot be dialled with [pbx] dial", user.extension)
        return await _page(request, user, query, "The phone system cannot ring your extension; tell your "
                           "administrator.", False, 500)
    if not admit_call(request.app, user.extension, ctx.clock.now().timestamp()):
        log.warning("click to call from %s refused: too many calls", user.extension)
        return await _page(request, user, query, "Too many calls in a short time. Wait a minute, then try again.",
                           False, 429)
    log.info("click to call: extension %s calls contact %d", user.extension, stored.id)
    started = await start_call(ctx.ami.value, request_, name, user.extension)
    return await _page(request, user, query, started.message, started.ok)
