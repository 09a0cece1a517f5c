"""The rules both Exchange sources apply to a contact's fields, so EWS and Graph store the same contact.

Names are kept as people write them: right-to-left scripts, emoji (with their joiners), quotes,
semicolons, line breaks and `${...}` all reach the store unchanged. They are neutralised where they
leave it: the caller-ID name (plugin.agi.server.sanitize_value), LDAP values (plugin.ldap.schema.clean),
CLI tables (plugin.commands.common), log lines (repr). Only what no consumer can carry is changed on the
way in: control characters other than line breaks and tabs become spaces, a CR LF or lone CR becomes a
line break, and an unpaired surrogate becomes U+FFFD (SQLite could not store it as UTF-8).

Length: a contact's texts are cut at MAX_CONTACT_TEXT characters. That bound only stops a hostile 10 MB
value; Outlook itself keeps names far shorter, so no real name is cut in the store. Where a name leaves
for a field with a limit (caller ID 64, LDAP 1024 characters, CLI columns), that consumer cuts it.
"""

from __future__ import annotations

import re

from pbxsync.sync.model import PhoneKind

MAX_CONTACT_TEXT = 4096
MAX_EMAIL_LENGTH = 320

_BREAKS = re.compile(r"\r\n?")
_UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _replace(match: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= match[0] <= "\udfff" else " "


def contact_text(value: object, limit: int = MAX_CONTACT_TEXT) -> str:
    """An untrusted Exchange text for the store, kept as written (see the module docstring)."""
    if not isinstance(value, str):
        return ""
    text = value[:limit]
    if "\r" in text:
        text = _BREAKS.sub("\n", text)
    return _UNSTORABLE.sub(_replace, text).strip()


def contact_email(value: object) -> str:
    """An e-mail address of a contact: one line, bounded; "" when there is none."""
    return " ".join(contact_text(value, MAX_EMAIL_LENGTH).split())


def display_name(display: str, file_as: str, given: str, surname: str, company: str,
                 emails: tuple[str, ...]) -> str:
    """The name a contact is listed under: DisplayName, else FileAs, else given name and surname, else the
    company, else the first e-mail address (Outlook leaves DisplayName empty for some imported contacts)."""
    return (display or file_as or " ".join(p for p in (given, surname) if p) or company
            or next((e for e in emails if e), ""))


MAX_CONTACT_FOLDERS = 200  # below the Contacts folder, per mailbox
# Exchange's own folders below Contacts that are not the user's phonebook. Over EWS most of them are also
# told apart by their FolderClass (IPF.Contact.RecipientCache, ...); these names are checked on both sources.
SYSTEM_FOLDER_NAMES = frozenset({"recipient cache", "gal contacts", "organizational contacts",
                                 "peoplecentricconversation buddies", "externalcontacts"})


def is_system_folder(name: str) -> bool:
    return name.strip().casefold() in SYSTEM_FOLDER_NAMES


def folder_path(parent_path: str, name: str) -> str:
    """A sub-folder's path below Contacts as contacts carry it: display names joined by "/"."""
    clean = " ".join(contact_text(name, 255).split()) or "(no name)"
    return f"{parent_path}/{clean}" if parent_path else clean


# Every key of EWS PhoneNumberKeyType (types.xsd), by the sort of line it is.
EWS_PHONE_KINDS = {
    "BusinessPhone": PhoneKind.BUSINESS, "BusinessPhone2": PhoneKind.BUSINESS,
    "CompanyMainPhone": PhoneKind.BUSINESS,
    "MobilePhone": PhoneKind.MOBILE, "CarPhone": PhoneKind.MOBILE, "RadioPhone": PhoneKind.MOBILE,
    "HomePhone": PhoneKind.HOME, "HomePhone2": PhoneKind.HOME,
    "BusinessFax": PhoneKind.FAX, "HomeFax": PhoneKind.FAX, "OtherFax": PhoneKind.FAX,
    "Pager": PhoneKind.PAGER,
    "AssistantPhone": PhoneKind.OTHER, "Callback": PhoneKind.OTHER, "OtherTelephone": PhoneKind.OTHER,
    "PrimaryPhone": PhoneKind.OTHER, "Isdn": PhoneKind.OTHER, "Telex": PhoneKind.OTHER,
    "TtyTddPhone": PhoneKind.OTHER,
}

# The Graph v1.0 contact resource has exactly these phone properties: the other EWS keys (fax, pager,
# car, assistant, ...) are not exposed by it (docs/exchange-ews.md, "EWS and Graph").
GRAPH_PHONE_LISTS = (("businessPhones", PhoneKind.BUSINESS), ("homePhones", PhoneKind.HOME))
GRAPH_PHONE_SINGLES = (("mobilePhone", PhoneKind.MOBILE),)
