"""The EWS operations the simulator serves, over the protocol-neutral `Organisation`.

`EwsRequest` parses one SOAP request (operation, impersonation, the mailbox it is about, shapes and folder
ids); `EwsOperations` answers it with the ResponseMessages' inner XML. Errors come out as Exchange reports
them: `SoapFault` for the whole request, `MessageError` inside one ResponseMessage. The HTTP side
(authentication, envelopes, injected faults) is `ews_server`.

Somewhat over the house's ~400 lines: one class holds one method per EWS operation, dispatched by name,
each a few dozen lines of protocol; splitting operations across modules would hide which are served.

Over 400 lines on purpose: one function per EWS operation the simulator serves, all over the same
Organisation; the XML rendering lives in ews_xml.py.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime

from pbxsync.sync.simulator.ews_update import update_item
from pbxsync.sync.simulator.ews_xml import (
    MESSAGES_NS,
    SOAP_NS,
    TYPES_NS,
    Shape,
    Viewer,
    calendar_item_xml,
    contact_folder_xml,
    esc,
    item_xml,
    mailbox_xml,
    text_of,
)
from pbxsync.sync.simulator.ids import decode_sync_state, encode_sync_state
from pbxsync.sync.simulator.organisation import NoSuchFolder, NoSuchItem, NoSuchMailbox, Organisation
from pbxsync.sync.simulator.records import ContactFolderRecord, Item, MeetingRecord, User, contact_folder_key

_M, _T, _S = f"{{{MESSAGES_NS}}}", f"{{{TYPES_NS}}}", f"{{{SOAP_NS}}}"
_FOLDER_CLASSES = {"calendar": ("CalendarFolder", "IPF.Appointment", "Calendar"),
                   "contacts": ("ContactsFolder", "IPF.Contact", "Contacts")}
_ROOT_FOLDERS = ("root", "msgfolderroot")
_FOLDER_NOT_FOUND = ("ErrorFolderNotFound", "The specified folder could not be found.")


def _sub_folder(name: str) -> str | None:
    """The sub-folder id in a folder name "contacts:<id>" (see records.contact_folder_key), else None."""
    base, _, sub = name.partition(":")
    return sub if base == "contacts" and sub else None


class SoapFault(Exception):
    def __init__(self, code: str, message: str, back_off_ms: int = 0) -> None:
        super().__init__(message)
        self.code, self.message, self.back_off_ms = code, message, back_off_ms


class MessageError(Exception):
    """An error reported inside the operation's ResponseMessage (ResponseClass="Error")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def folder_id(mailbox: str, folder: str) -> str:
    return base64.b64encode(f"fld|{mailbox}|{folder}".encode()).decode("ascii")


def parse_folder_id(value: str) -> tuple[str, str]:
    try:
        tag, mailbox, folder = base64.b64decode(value, validate=True).decode("utf-8").split("|")
    except (ValueError, UnicodeDecodeError):
        raise MessageError("ErrorInvalidIdMalformed", "Id is malformed.") from None
    if tag != "fld":
        raise MessageError("ErrorInvalidIdMalformed", "Id is malformed.")
    return mailbox, folder


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MessageError("ErrorInvalidRequest", f"Bad date {text[:40]!r}.") from None


class EwsRequest:
    """One parsed EWS request: who acts, for which mailbox, which operation."""

    def __init__(self, org: Organisation, actor: User, root: ET.Element) -> None:
        self.org, self.actor = org, actor
        header = root.find(f"{_S}Header")
        body = root.find(f"{_S}Body")
        if body is None or len(body) == 0:
            raise SoapFault("ErrorSchemaValidation", "The request failed schema validation: no Body.")
        self.payload = body[0]
        self.operation = self.payload.tag.rsplit("}", 1)[-1]
        version = header.find(f"{_T}RequestServerVersion") if header is not None else None
        self.api_version = version.get("Version", "Exchange2016") if version is not None else "Exchange2016"
        self.impersonated: str | None = None
        imp = header.find(f"{_T}ExchangeImpersonation") if header is not None else None
        if imp is not None:
            sid = imp.find(f"{_T}ConnectingSID")
            target = ""
            if sid is not None and len(sid):
                target = text_of(sid[0]).lower()
            self.impersonated = target

    def mailbox_hint(self) -> str:
        """The mailbox the request is about, for faults and counters (before authorisation)."""
        if self.impersonated:
            return self.impersonated
        for mail in self.payload.iter(f"{_T}EmailAddress"):
            return text_of(mail).lower()
        for fid in self.payload.iter(f"{_T}FolderId"):
            try:
                return parse_folder_id(fid.get("Id", ""))[0]
            except MessageError:
                break
        return self.actor.email

    def authorise(self) -> None:
        if self.impersonated is not None:
            if not self.org.may_impersonate(self.actor):
                raise SoapFault("ErrorImpersonateUserDenied",
                                "The account does not have permission to impersonate the requested user.")
            if not self.org.has_mailbox(self.impersonated):
                raise SoapFault("ErrorNonExistentMailbox",
                                "The SMTP address has no mailbox associated with it.")

    @property
    def principal(self) -> str:
        return self.impersonated or self.actor.email

    def check_mailbox(self, mailbox: str) -> str:
        mailbox = (mailbox or self.principal).lower()
        if mailbox != self.principal:
            raise MessageError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if not self.org.has_mailbox(mailbox):
            raise MessageError("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
        return mailbox

    def folder_ref(self, container: ET.Element | None) -> tuple[str, str]:
        """(mailbox, folder name) of the first FolderId/DistinguishedFolderId in `container`."""
        if container is None or len(container) == 0:
            raise MessageError("ErrorInvalidRequest", "No folder id.")
        ref = container[0]
        if ref.tag == f"{_T}DistinguishedFolderId":
            mailbox = text_of(ref.find(f"{_T}Mailbox/{_T}EmailAddress"))
            return self.check_mailbox(mailbox), ref.get("Id", "")
        if ref.tag == f"{_T}FolderId":
            mailbox, name = parse_folder_id(ref.get("Id", ""))
            return self.check_mailbox(mailbox), name
        raise MessageError("ErrorInvalidRequest", "Unsupported folder id.")

    def shape(self, tag: str) -> Shape:
        elem = self.payload.find(f"{_M}{tag}")
        base = text_of(elem.find(f"{_T}BaseShape"), "Default") if elem is not None else "Default"
        fields: set[str] = set()
        if elem is not None:
            for uri in elem.iter():
                name = uri.get("FieldURI")
                if name:
                    leaf = name.split(":")[1] if ":" in name else name
                    fields.add({"PhoneNumber": "PhoneNumbers", "EmailAddress": "EmailAddresses"}.get(leaf, leaf))
        return Shape(base, fields)


def success_message(operation: str, inner: str) -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f"{inner}</m:{operation}ResponseMessage>")


def error_message(operation: str, error: MessageError, extra: str = "") -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{esc(error.message)}'
            f"</m:MessageText><m:ResponseCode>{error.code}</m:ResponseCode><m:DescriptiveLinkKey>0"
            f"</m:DescriptiveLinkKey>{extra}</m:{operation}ResponseMessage>")


class EwsOperations:
    """The operations; each returns the ResponseMessages' inner XML."""

    def __init__(self, request: EwsRequest, duplicate_items: bool) -> None:
        self.r = request
        self.org = request.org
        self.dup = 2 if duplicate_items else 1

    def viewer(self, mailbox: str) -> Viewer:
        return Viewer(mailbox, self.org.mailbox_type)

    def run(self) -> str:
        handler: Callable[[], str] | None = getattr(self, f"op_{self.r.operation}", None)
        if handler is None:
            raise SoapFault("ErrorInvalidRequest", f"The request is invalid: {self.r.operation} not supported.")
        return handler()

    def op_GetFolder(self) -> str:
        out = []
        for ref in list(self.r.payload.find(f"{_M}FolderIds") or []):
            try:
                holder = ET.Element("x")
                holder.append(ref)
                mailbox, name = self.r.folder_ref(holder)
                if name in _ROOT_FOLDERS:
                    folder_xml = (f'<t:Folder><t:FolderId Id="{folder_id(mailbox, name)}" ChangeKey="AQAAAA=="/>'
                                  f"<t:DisplayName>{'Top of Information Store' if name != 'root' else 'Root'}"
                                  "</t:DisplayName><t:TotalCount>0</t:TotalCount>"
                                  "<t:ChildFolderCount>2</t:ChildFolderCount><t:UnreadCount>0</t:UnreadCount>"
                                  "</t:Folder>")
                elif name in _FOLDER_CLASSES:
                    tag, cls, display = _FOLDER_CLASSES[name]
                    count = len(self.org.folder_items(mailbox, name))
                    children = len(self._children(mailbox, "")) if name == "contacts" else 0
                    folder_xml = (f'<t:{tag}><t:FolderId Id="{folder_id(mailbox, name)}" ChangeKey="AgAAAA=="/>'
                                  f"<t:FolderClass>{cls}</t:FolderClass><t:DisplayName>{display}</t:DisplayName>"
                                  f"<t:TotalCount>{count}</t:TotalCount><t:ChildFolderCount>{children}"
                                  f"</t:ChildFolderCount></t:{tag}>")
                elif (sub := _sub_folder(name)) is not None:
                    record = self._contact_folder(mailbox, sub)
                    folder_xml = self._folder_xml(mailbox, record)
                elif name == "sentitems":  # where CreateItem's SendAndSaveCopy keeps mail (sync.simulator.outbox)
                    folder_xml = (f'<t:Folder><t:FolderId Id="{folder_id(mailbox, name)}" ChangeKey="AgAAAA=="/>'
                                  "<t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>Sent Items</t:DisplayName>"
                                  "<t:TotalCount>0</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount></t:Folder>")
                else:
                    raise MessageError(*_FOLDER_NOT_FOUND)
                out.append(success_message("GetFolder", f"<m:Folders>{folder_xml}</m:Folders>"))
            except MessageError as exc:
                out.append(error_message("GetFolder", exc))
            except NoSuchMailbox:
                out.append(error_message("GetFolder", MessageError(
                    "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")))
        return "".join(out)

    def _contact_folder(self, mailbox: str, sub: str) -> ContactFolderRecord:
        found = next((f for f in self.org.contact_folders(mailbox) if f.folder_id == sub), None)
        if found is None:
            raise MessageError(*_FOLDER_NOT_FOUND)
        return found

    def _children(self, mailbox: str, parent: str) -> list[ContactFolderRecord]:
        return [f for f in self.org.contact_folders(mailbox) if f.parent_id == parent]

    def _folder_xml(self, mailbox: str, record: ContactFolderRecord) -> str:
        parent = contact_folder_key(record.parent_id)
        return contact_folder_xml(folder_id(mailbox, contact_folder_key(record.folder_id)), folder_id(mailbox, parent),
                                  record, len(self.org.folder_items(mailbox, contact_folder_key(record.folder_id))),
                                  len(self._children(mailbox, record.folder_id)))

    def op_FindFolder(self) -> str:
        """The folders below one folder (Traversal Shallow or Deep); only Contacts has any here."""
        try:
            mailbox, name = self.r.folder_ref(self.r.payload.find(f"{_M}ParentFolderIds"))
            start: str | None = None  # the contacts folder to list below; None: a folder without any
            if name == "contacts":
                start = ""
            elif (sub := _sub_folder(name)) is not None:
                start = self._contact_folder(mailbox, sub).folder_id
            elif name not in _ROOT_FOLDERS and name not in _FOLDER_CLASSES:
                raise MessageError(*_FOLDER_NOT_FOUND)
            found: list[ContactFolderRecord] = []
            pending = [start] if start is not None else []
            while pending:
                for child in self._children(mailbox, pending.pop(0)):
                    found.append(child)
                    if self.r.payload.get("Traversal") == "Deep":
                        pending.append(child.folder_id)
            offset, limit = _indexed_page(self.r.payload.find(f"{_M}IndexedPageFolderView"), len(found))
            chosen = found[offset:offset + limit]
            folders = "".join(self._folder_xml(mailbox, f) for f in chosen)
            last = "true" if offset + len(chosen) >= len(found) else "false"
            return success_message("FindFolder", f'<m:RootFolder IndexedPagingOffset="{offset + len(chosen)}" '
                                   f'TotalItemsInView="{len(found)}" IncludesLastItemInRange="{last}">'
                                   f"<t:Folders>{folders}</t:Folders></m:RootFolder>")
        except ValueError:
            return error_message("FindFolder", MessageError("ErrorInvalidRequest", "Bad paging values."))
        except MessageError as exc:
            return error_message("FindFolder", exc)
        except NoSuchMailbox:
            return error_message("FindFolder", MessageError("ErrorNonExistentMailbox", "No mailbox."))

    def op_FindItem(self) -> str:
        try:
            mailbox, name = self.r.folder_ref(self.r.payload.find(f"{_M}ParentFolderIds"))
            shape = self.r.shape("ItemShape")
            view = self.r.payload.find(f"{_M}CalendarView")
            if view is not None:
                if name != "calendar":
                    raise MessageError("ErrorInvalidRequest", "CalendarView only applies to calendar folders.")
                start, end = _parse_time(view.get("StartDate", "")), _parse_time(view.get("EndDate", ""))
                if end <= start:
                    raise MessageError("ErrorCalendarEndDateIsEarlierThanStartDate",
                                       "EndDate is earlier than StartDate")
                entries = self.org.calendar_view(mailbox, start, end)
                limit = int(view.get("MaxEntriesReturned", "0") or 0) or len(entries)
                chosen = entries[:limit]
                viewer = self.viewer(mailbox)
                items = "".join(calendar_item_xml(e, shape, viewer) for e in chosen for _ in range(self.dup))
                last = "true" if len(chosen) == len(entries) else "false"
                return success_message("FindItem", f'<m:RootFolder TotalItemsInView="{len(entries)}" '
                                       f'IncludesLastItemInRange="{last}"><t:Items>{items}</t:Items></m:RootFolder>')
            records: list[Item] = list(
                self.org.folder_items(mailbox, "contacts" if name == "contacts" else "calendar"))
            offset, limit = _indexed_page(self.r.payload.find(f"{_M}IndexedPageItemView"), len(records))
            chosen_records = records[offset:offset + limit]
            items = "".join(item_xml(c, shape) for c in chosen_records for _ in range(self.dup))
            nxt = offset + len(chosen_records)
            last = "true" if nxt >= len(records) else "false"
            return success_message("FindItem", f'<m:RootFolder IndexedPagingOffset="{nxt}" '
                                   f'TotalItemsInView="{len(records)}" IncludesLastItemInRange="{last}">'
                                   f"<t:Items>{items}</t:Items></m:RootFolder>")
        except ValueError:
            return error_message("FindItem", MessageError("ErrorInvalidRequest", "Bad paging values."))
        except MessageError as exc:
            return error_message("FindItem", exc)
        except NoSuchMailbox:
            return error_message("FindItem", MessageError("ErrorNonExistentMailbox", "No mailbox."))

    def op_GetItem(self) -> str:
        shape = self.r.shape("ItemShape")
        out = []
        ids = self.r.payload.find(f"{_M}ItemIds")
        for ref in list(ids) if ids is not None else []:
            item_id = ref.get("Id", "")
            try:
                mailbox = self.r.check_mailbox("")
                if ref.tag == f"{_T}RecurringMasterItemId":
                    found = self.org.calendar_item(mailbox, ref.get("OccurrenceId", ""))
                    master = found.master if not isinstance(found, MeetingRecord) else found
                    xml = calendar_item_xml(master, shape, self.viewer(mailbox))
                    out.append(success_message("GetItem", f"<m:Items>{xml}</m:Items>"))
                    continue
                try:
                    xml = item_xml(self.org.item(mailbox, item_id), shape, self.viewer(mailbox))
                except NoSuchItem:
                    xml = item_xml(self.org.calendar_item(mailbox, item_id), shape, self.viewer(mailbox))
                out.append(success_message("GetItem", f"<m:Items>{xml}</m:Items>"))
            except NoSuchItem:
                out.append(error_message("GetItem", MessageError(
                    "ErrorItemNotFound", "The specified object was not found in the store."), "<m:Items/>"))
            except MessageError as exc:
                out.append(error_message("GetItem", exc, "<m:Items/>"))
            except NoSuchMailbox:
                out.append(error_message("GetItem", MessageError("ErrorNonExistentMailbox", "No mailbox."),
                                          "<m:Items/>"))
        return "".join(out)

    def op_UpdateItem(self) -> str:
        return update_item(self.r)

    def op_SyncFolderItems(self) -> str:
        try:
            mailbox, name = self.r.folder_ref(self.r.payload.find(f"{_M}SyncFolderId"))
            if name not in _FOLDER_CLASSES and _sub_folder(name) is None:
                raise MessageError(*_FOLDER_NOT_FOUND)
            shape = self.r.shape("ItemShape")
            try:
                seq = decode_sync_state(text_of(self.r.payload.find(f"{_M}SyncState")), mailbox, name)
            except ValueError:
                raise MessageError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or "
                                   "otherwise invalid.") from None
            try:
                limit = int(text_of(self.r.payload.find(f"{_M}MaxChangesReturned"), "100"))
            except ValueError:
                raise MessageError("ErrorInvalidRequest", "Bad MaxChangesReturned.") from None
            if not 1 <= limit <= 512:
                raise MessageError("ErrorInvalidRequest", "MaxChangesReturned must be 1..512.")
            try:
                page = self.org.changes_since(mailbox, name, seq, limit)
            except NoSuchFolder:
                raise MessageError(*_FOLDER_NOT_FOUND) from None
            parts = []
            for change in page.changes:
                if change.kind == "delete":
                    parts.append(f'<t:Delete><t:ItemId Id="{esc(change.item_id)}"/></t:Delete>')
                    continue
                tag = "Create" if change.kind == "create" else "Update"
                body = item_xml(change.record, shape, self.viewer(mailbox)) if change.record is not None else ""
                parts.extend(f"<t:{tag}>{body}</t:{tag}>" for _ in range(self.dup))
            return success_message("SyncFolderItems",
                                   f"<m:SyncState>{encode_sync_state(mailbox, name, page.seq)}</m:SyncState>"
                                   f"<m:IncludesLastItemInRange>{str(page.includes_last).lower()}"
                                   f"</m:IncludesLastItemInRange><m:Changes>{''.join(parts)}</m:Changes>")
        except MessageError as exc:
            return error_message("SyncFolderItems", exc)
        except NoSuchMailbox:
            return error_message("SyncFolderItems", MessageError("ErrorNonExistentMailbox", "No mailbox."))

    def op_ResolveNames(self) -> str:
        entry = text_of(self.r.payload.find(f"{_M}UnresolvedEntry"))
        user = None
        if entry.lower().startswith("/o="):
            user = self.org.user_by_legacy_dn(entry)
        elif entry:
            probe = entry.lower().removeprefix("smtp:")
            user = self.org.user(probe) or next(
                (u for u in self.org.users() if u.name.lower() == probe), None)
        if user is None:
            return error_message("ResolveNames", MessageError(
                "ErrorNameResolutionNoResults", "No results were found."))
        return success_message("ResolveNames",
                               '<m:ResolutionSet TotalItemsInView="1" IncludesLastItemInRange="true">'
                               f"<t:Resolution>{mailbox_xml(user.email, user.name)}</t:Resolution></m:ResolutionSet>")

    def op_ExpandDL(self) -> str:
        """One level of a group, as Exchange lists it: people as Mailbox (or Contact for an outside
        address), a nested group as one entry of its type (PublicDL, GroupMailbox), expanded by the client
        in another call. Anything that is not a group: ErrorNameResolutionNoResults."""
        address = next((text_of(e).lower() for e in self.r.payload.iter() if e.tag.endswith("}EmailAddress")), "")
        group = self.org.groups.get(address)
        if group is None:
            return error_message("ExpandDL", MessageError("ErrorNameResolutionNoResults", "No results were found."))
        entries = []
        for member in group.members:
            nested, user = self.org.groups.get(member), self.org.user(member)
            name = nested.name if nested else user.name if user else member
            kind = nested.mailbox_type if nested else "Mailbox" if user else "Contact"
            entries.append(mailbox_xml(member, name, kind))
        return success_message("ExpandDL", f'<m:DLExpansion TotalItemsInView="{len(entries)}" '
                               f'IncludesLastItemInRange="true">{"".join(entries)}</m:DLExpansion>')


def _indexed_page(view: ET.Element | None, total: int) -> tuple[int, int]:
    """Offset and count an IndexedPage(Item|Folder)View asks for (raises ValueError on non-numbers)."""
    if view is None:
        return 0, total
    offset = int(view.get("Offset", "0") or 0)
    limit = int(view.get("MaxEntriesReturned", "0") or 0) or total
    if view.get("BasePoint") == "End":
        offset = max(0, total - offset - limit)
    return offset, limit
