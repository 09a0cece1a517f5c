"""A simulated Exchange server speaking EWS SOAP (and SOAP autodiscover) over HTTP on loopback.

exchangelib runs against it unmodified. Start it in-process:

    org = Organisation.load_file("tests/data/mailboxes.json")
    with EwsSimulator(org) as sim:          # binds 127.0.0.1, port 0 = any free port
        sim.ews_url                          # http://127.0.0.1:PORT/EWS/Exchange.asmx
        sim.autodiscover_url                 # http://127.0.0.1:PORT/autodiscover/autodiscover.svc
        org.counters.get("SyncFolderItems")  # requests served, by operation (and mailbox)

Operations: GetFolder, FindItem (CalendarView, IndexedPageItemView), GetItem, SyncFolderItems,
ResolveNames, autodiscover GetUserSettings. Authentication is HTTP Basic (NTLM is not offered; see
docs/exchange-ews.md). ExchangeImpersonation is honoured for users with `can_impersonate`.
Faults injected with `Organisation.inject_fault` are rendered as Exchange does: SOAP faults
(ErrorServerBusy with BackOffMilliseconds, ErrorImpersonateUserDenied, ErrorNonExistentMailbox),
ResponseMessage errors (ErrorAccessDenied), HTTP 401, other HTTP statuses, malformed bodies.
"""

from __future__ import annotations

import base64
import logging
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pbxsync.sync.simulator.ews_xml import (
    AUTODISCOVER_NS,
    MESSAGES_NS,
    SOAP_NS,
    TYPES_NS,
    Shape,
    calendar_item_xml,
    contact_xml,
    esc,
    mailbox_xml,
)
from pbxsync.sync.simulator.mailboxes import (
    ContactRecord,
    Fault,
    MeetingRecord,
    NoSuchItem,
    NoSuchMailbox,
    Organisation,
    User,
    decode_sync_state,
    encode_sync_state,
)
from pbxsync.sync.simulator.serving import BackgroundServer

log = logging.getLogger("pbxsync.simulator.ews")

EWS_PATH = "/ews/exchange.asmx"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
MAX_REQUEST_BYTES = 8 * 1024 * 1024
_M, _T, _S = f"{{{MESSAGES_NS}}}", f"{{{TYPES_NS}}}", f"{{{SOAP_NS}}}"
_FOLDER_CLASSES = {"calendar": ("CalendarFolder", "IPF.Appointment", "Calendar"),
                   "contacts": ("ContactsFolder", "IPF.Contact", "Contacts")}
_ROOT_FOLDERS = ("root", "msgfolderroot")


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


def _text(elem: ET.Element | None, default: str = "") -> str:
    return (elem.text or default).strip() if elem is not None else default


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MessageError("ErrorInvalidRequest", f"Bad date {text[:40]!r}.") from None


class _Request:
    """One parsed EWS request: who acts, for which mailbox, which operation."""

    def __init__(self, sim: EwsSimulator, actor: User, root: ET.Element) -> None:
        self.sim, self.org, self.actor = sim, sim.org, actor
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
                target = _text(sid[0]).lower()
            self.impersonated = target

    def mailbox_hint(self) -> str:
        """The mailbox the request is about, for faults and counters (before authorisation)."""
        if self.impersonated:
            return self.impersonated
        for mail in self.payload.iter(f"{_T}EmailAddress"):
            return _text(mail).lower()
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
            mailbox = _text(ref.find(f"{_T}Mailbox/{_T}EmailAddress"))
            return self.check_mailbox(mailbox), ref.get("Id", "")
        if ref.tag == f"{_T}FolderId":
            mailbox, name = parse_folder_id(ref.get("Id", ""))
            return self.check_mailbox(mailbox), name
        raise MessageError("ErrorInvalidRequest", "Unsupported folder id.")

    def shape(self, tag: str) -> Shape:
        elem = self.payload.find(f"{_M}{tag}")
        base = _text(elem.find(f"{_T}BaseShape"), "Default") if elem is not None else "Default"
        fields: set[str] = set()
        if elem is not None:
            for uri in elem.iter():
                name = uri.get("FieldURI")
                if name:
                    leaf = name.split(":")[1] if ":" in name else name
                    fields.add({"PhoneNumber": "PhoneNumbers", "EmailAddress": "EmailAddresses"}.get(leaf, leaf))
        return Shape(base, fields)


def _message(operation: str, inner: str) -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f"{inner}</m:{operation}ResponseMessage>")


def _error_message(operation: str, error: MessageError, extra: str = "") -> str:
    return (f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{esc(error.message)}'
            f"</m:MessageText><m:ResponseCode>{error.code}</m:ResponseCode><m:DescriptiveLinkKey>0"
            f"</m:DescriptiveLinkKey>{extra}</m:{operation}ResponseMessage>")


class EwsOperations:
    """The operations; each returns the ResponseMessages' inner XML."""

    def __init__(self, request: _Request, duplicate_items: bool) -> None:
        self.r = request
        self.org = request.org
        self.dup = 2 if duplicate_items else 1

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
                    count = len(self.org.contacts(mailbox) if name == "contacts" else self.org.meetings(mailbox))
                    folder_xml = (f'<t:{tag}><t:FolderId Id="{folder_id(mailbox, name)}" ChangeKey="AgAAAA=="/>'
                                  f"<t:FolderClass>{cls}</t:FolderClass><t:DisplayName>{display}</t:DisplayName>"
                                  f"<t:TotalCount>{count}</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount>"
                                  f"</t:{tag}>")
                else:
                    raise MessageError("ErrorFolderNotFound", "The specified folder could not be found.")
                out.append(_message("GetFolder", f"<m:Folders>{folder_xml}</m:Folders>"))
            except MessageError as exc:
                out.append(_error_message("GetFolder", exc))
            except NoSuchMailbox:
                out.append(_error_message("GetFolder", MessageError(
                    "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")))
        return "".join(out)

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
                items = "".join(calendar_item_xml(e, shape) for e in chosen for _ in range(self.dup))
                last = "true" if len(chosen) == len(entries) else "false"
                return _message("FindItem", f'<m:RootFolder TotalItemsInView="{len(entries)}" '
                                f'IncludesLastItemInRange="{last}"><t:Items>{items}</t:Items></m:RootFolder>')
            page = self.r.payload.find(f"{_M}IndexedPageItemView")
            records: list[ContactRecord | MeetingRecord] = list(
                self.org.contacts(mailbox) if name == "contacts" else self.org.meetings(mailbox))
            offset, limit = 0, len(records)
            if page is not None:
                offset = int(page.get("Offset", "0") or 0)
                limit = int(page.get("MaxEntriesReturned", "0") or 0) or len(records)
                if page.get("BasePoint") == "End":
                    offset = max(0, len(records) - offset - limit)
            chosen_records = records[offset:offset + limit]
            items = "".join((contact_xml(c, shape) if isinstance(c, ContactRecord) else calendar_item_xml(c, shape))
                            for c in chosen_records for _ in range(self.dup))
            nxt = offset + len(chosen_records)
            last = "true" if nxt >= len(records) else "false"
            return _message("FindItem", f'<m:RootFolder IndexedPagingOffset="{nxt}" TotalItemsInView="{len(records)}"'
                            f' IncludesLastItemInRange="{last}"><t:Items>{items}</t:Items></m:RootFolder>')
        except ValueError:
            return _error_message("FindItem", MessageError("ErrorInvalidRequest", "Bad paging values."))
        except MessageError as exc:
            return _error_message("FindItem", exc)
        except NoSuchMailbox:
            return _error_message("FindItem", MessageError("ErrorNonExistentMailbox", "No mailbox."))

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
                    out.append(_message("GetItem", f"<m:Items>{calendar_item_xml(master, shape)}</m:Items>"))
                    continue
                try:
                    record = self.org.item(mailbox, item_id)
                    xml = (contact_xml(record, shape) if isinstance(record, ContactRecord)
                           else calendar_item_xml(record, shape))
                except NoSuchItem:
                    xml = calendar_item_xml(self.org.calendar_item(mailbox, item_id), shape)
                out.append(_message("GetItem", f"<m:Items>{xml}</m:Items>"))
            except NoSuchItem:
                out.append(_error_message("GetItem", MessageError(
                    "ErrorItemNotFound", "The specified object was not found in the store."), "<m:Items/>"))
            except MessageError as exc:
                out.append(_error_message("GetItem", exc, "<m:Items/>"))
            except NoSuchMailbox:
                out.append(_error_message("GetItem", MessageError("ErrorNonExistentMailbox", "No mailbox."),
                                          "<m:Items/>"))
        return "".join(out)

    def op_SyncFolderItems(self) -> str:
        try:
            mailbox, name = self.r.folder_ref(self.r.payload.find(f"{_M}SyncFolderId"))
            if name not in _FOLDER_CLASSES:
                raise MessageError("ErrorFolderNotFound", "The specified folder could not be found.")
            shape = self.r.shape("ItemShape")
            try:
                seq = decode_sync_state(_text(self.r.payload.find(f"{_M}SyncState")), mailbox, name)
            except ValueError:
                raise MessageError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or "
                                   "otherwise invalid.") from None
            try:
                limit = int(_text(self.r.payload.find(f"{_M}MaxChangesReturned"), "100"))
            except ValueError:
                raise MessageError("ErrorInvalidRequest", "Bad MaxChangesReturned.") from None
            if not 1 <= limit <= 512:
                raise MessageError("ErrorInvalidRequest", "MaxChangesReturned must be 1..512.")
            page = self.org.changes_since(mailbox, name, seq, limit)
            parts = []
            for change in page.changes:
                if change.kind == "delete":
                    parts.append(f'<t:Delete><t:ItemId Id="{esc(change.item_id)}"/></t:Delete>')
                    continue
                tag = "Create" if change.kind == "create" else "Update"
                rec = change.record
                body = contact_xml(rec, shape) if isinstance(rec, ContactRecord) else calendar_item_xml(
                    rec, shape) if isinstance(rec, MeetingRecord) else ""
                parts.extend(f"<t:{tag}>{body}</t:{tag}>" for _ in range(self.dup))
            return _message("SyncFolderItems",
                            f"<m:SyncState>{encode_sync_state(mailbox, name, page.seq)}</m:SyncState>"
                            f"<m:IncludesLastItemInRange>{str(page.includes_last).lower()}"
                            f"</m:IncludesLastItemInRange><m:Changes>{''.join(parts)}</m:Changes>")
        except MessageError as exc:
            return _error_message("SyncFolderItems", exc)
        except NoSuchMailbox:
            return _error_message("SyncFolderItems", MessageError("ErrorNonExistentMailbox", "No mailbox."))

    def op_ResolveNames(self) -> str:
        entry = _text(self.r.payload.find(f"{_M}UnresolvedEntry"))
        user = None
        if entry.lower().startswith("/o="):
            user = self.org.user_by_legacy_dn(entry)
        elif entry:
            probe = entry.lower().removeprefix("smtp:")
            user = self.org.user(probe) or next(
                (u for u in self.org.users() if u.name.lower() == probe), None)
        if user is None:
            return _error_message("ResolveNames", MessageError(
                "ErrorNameResolutionNoResults", "No results were found."))
        return _message("ResolveNames", '<m:ResolutionSet TotalItemsInView="1" IncludesLastItemInRange="true">'
                        f"<t:Resolution>{mailbox_xml(user.email, user.name)}</t:Resolution></m:ResolutionSet>")


_CLIENT_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class QuietHTTPServer(ThreadingHTTPServer):
    """socketserver prints a whole traceback to stderr for any error in a request thread. A client that
    hangs up mid-request (tests cancelling, exchangelib timing out) is normal here: one debug line; any
    other error: one warning line, never a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        peer = client_address[0] if isinstance(client_address, tuple) and client_address else client_address
        if isinstance(exc, _CLIENT_GONE):
            log.debug("simulator: client %s went away mid-request (%s)", peer, type(exc).__name__)
        else:
            log.warning("simulator: request from %s failed: %s: %s", peer, type(exc).__name__, exc)


class EwsSimulator(BackgroundServer):
    """The HTTP server. Thread-safe; `start()`/`stop()` or use as a context manager."""

    def __init__(self, org: Organisation, host: str = "127.0.0.1", port: int = 0,
                 server_version: tuple[int, int, int, int] = (15, 1, 2507, 6)) -> None:
        self.org = org
        self.server_version = server_version
        super().__init__(QuietHTTPServer((host, port), _make_handler(self)), "ews-simulator")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ews_url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    @property
    def autodiscover_url(self) -> str:
        return f"{self.base_url}/autodiscover/autodiscover.svc"

    # ---- responses

    def version_header(self, api_version: str) -> str:
        major, minor, build, rev = self.server_version
        return (f'<s:Header><h:ServerVersionInfo MajorVersion="{major}" MinorVersion="{minor}" '
                f'MajorBuildNumber="{build}" MinorBuildNumber="{rev}" Version="{esc(api_version)}" '
                f'xmlns:h="{TYPES_NS}" xmlns="{TYPES_NS}"/></s:Header>')

    @staticmethod
    def fault_body(fault: SoapFault) -> str:
        detail = ""
        if fault.code == "ErrorServerBusy":
            detail = (f'<t:MessageXml xmlns:t="{TYPES_NS}"><t:Value Name="BackOffMilliseconds">'
                      f"{fault.back_off_ms}</t:Value></t:MessageXml>")
        return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}"><s:Body><s:Fault>'
                f'<faultcode xmlns:a="{TYPES_NS}">a:{fault.code}</faultcode>'
                f'<faultstring xml:lang="en-US">{esc(fault.message)}</faultstring><detail>'
                f'<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">'
                f"{fault.code}</e:ResponseCode>"
                f'<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">'
                f"{esc(fault.message)}</e:Message>{detail}</detail></s:Fault></s:Body></s:Envelope>")

    def ews_body(self, request: _Request, inner: str) -> str:
        op = request.operation
        return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}">'
                f"{self.version_header(request.api_version)}"
                f'<s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                f'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
                f'<m:{op}Response xmlns:m="{MESSAGES_NS}" xmlns:t="{TYPES_NS}"><m:ResponseMessages>{inner}'
                f"</m:ResponseMessages></m:{op}Response></s:Body></s:Envelope>")

    def autodiscover_body(self, user: User | None, email: str) -> str:
        major, minor, build, rev = self.server_version
        head = (f'<s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/'
                f'Autodiscover/GetUserSettingsResponse</a:Action><h:ServerVersionInfo xmlns:h="{AUTODISCOVER_NS}" '
                f'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><h:MajorVersion>{major}</h:MajorVersion>'
                f"<h:MinorVersion>{minor}</h:MinorVersion><h:MajorBuildNumber>{build}</h:MajorBuildNumber>"
                f"<h:MinorBuildNumber>{rev}</h:MinorBuildNumber><h:Version>Exchange2015</h:Version>"
                f"</h:ServerVersionInfo></s:Header>")
        if user is None:
            user_xml = ("<UserResponse><ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user: "
                        f"'{esc(email)}'</ErrorMessage><RedirectTarget i:nil=\"true\"/><UserSettingErrors/>"
                        "<UserSettings/></UserResponse>")
        else:
            settings = {"UserDisplayName": user.name, "UserDN": user.legacy_dn,
                        "AutoDiscoverSMTPAddress": user.email, "ExternalEwsUrl": self.ews_url,
                        "InternalEwsUrl": self.ews_url, "EwsSupportedSchemas":
                        "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, "
                        "Exchange2013, Exchange2013_SP1, Exchange2016"}
            values = "".join(f'<UserSetting i:type="StringSetting"><Name>{k}</Name><Value>{esc(v)}</Value>'
                             f"</UserSetting>" for k, v in settings.items())
            user_xml = ("<UserResponse><ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>"
                        f'<RedirectTarget i:nil="true"/><UserSettingErrors/><UserSettings>{values}</UserSettings>'
                        "</UserResponse>")
        return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}" '
                f'xmlns:a="http://www.w3.org/2005/08/addressing">{head}<s:Body>'
                f'<GetUserSettingsResponseMessage xmlns="{AUTODISCOVER_NS}" '
                f'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><Response><ErrorCode>NoError</ErrorCode>'
                f"<ErrorMessage/><UserResponses>{user_xml}</UserResponses></Response>"
                "</GetUserSettingsResponseMessage></s:Body></s:Envelope>")


def _make_handler(sim: EwsSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "Microsoft-IIS/10.0"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            log.debug("ews-simulator: " + format, *args)

        def send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def authenticated(self) -> User | None:
            header = self.headers.get("Authorization", "")
            if not header.lower().startswith("basic "):
                return None
            try:
                name, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return sim.org.authenticate(name, password)

        def unauthorized(self) -> None:
            self.send(401, b"", {"WWW-Authenticate": 'Basic realm="127.0.0.1"'})

        def do_GET(self) -> None:
            self.send(405, b"", {"Allow": "POST"})

        def do_HEAD(self) -> None:
            self.send(405, b"", {"Allow": "POST"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            if length > MAX_REQUEST_BYTES:
                self.send(413, b"")
                return
            raw = self.rfile.read(length)
            path = self.path.split("?")[0].lower()
            if path not in (EWS_PATH, AUTODISCOVER_PATH):
                self.send(404, b"")
                return
            user = self.authenticated()
            if user is None:
                self.unauthorized()
                return
            try:
                root = ET.fromstring(raw)  # noqa: S314 - loopback test peer; expat never fetches entities
            except ET.ParseError:
                self.send(500, sim.fault_body(SoapFault("ErrorSchemaValidation",
                                                        "The request failed schema validation.")).encode())
                return
            if path == AUTODISCOVER_PATH:
                self.autodiscover(root)
            else:
                self.ews(user, root)

        def autodiscover(self, root: ET.Element) -> None:
            sim.org.counters.count("GetUserSettings")
            mailbox = root.find(f".//{{{AUTODISCOVER_NS}}}Mailbox")
            email = _text(mailbox).lower()
            self.send(200, sim.autodiscover_body(sim.org.user(email), email).encode())

        def ews(self, user: User, root: ET.Element) -> None:
            try:
                request = _Request(sim, user, root)
                mailbox = request.mailbox_hint()
                sim.org.counters.count(request.operation, mailbox)
                fault = sim.org.take_fault(request.operation, mailbox)
                if fault is not None and self.render_fault(fault, request):
                    return
                request.authorise()
                inner = EwsOperations(request, fault is not None and fault.kind == "duplicate_items").run()
                self.send(200, sim.ews_body(request, inner).encode("utf-8"))
            except SoapFault as exc:
                self.send(500, sim.fault_body(exc).encode("utf-8"))

        def render_fault(self, fault: Fault, request: _Request) -> bool:
            """Sends the fault's response; False when the fault only alters the normal response."""
            if fault.kind == "server_busy":
                raise SoapFault("ErrorServerBusy", "The server cannot service this request right now. "
                                "Try again later.", fault.back_off_ms)
            if fault.kind == "nonexistent_mailbox":
                raise SoapFault("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
            if fault.kind == "impersonation_denied":
                raise SoapFault("ErrorImpersonateUserDenied", "The account does not have permission to "
                                "impersonate the requested user.")
            if fault.kind == "access_denied":
                inner = _error_message(request.operation, MessageError(
                    "ErrorAccessDenied", "Access is denied. Check credentials and try again."))
                self.send(200, sim.ews_body(request, inner).encode())
                return True
            if fault.kind == "unauthorized":
                self.unauthorized()
                return True
            if fault.kind == "http_status":
                self.send(fault.status, fault.body)
                return True
            if fault.kind == "malformed":
                self.send(200, fault.body or b'<?xml version="1.0"?><s:Envelope xmlns:s="' + SOAP_NS.encode()
                          + b'"><s:Body><m:GetItemResponse><broken')
                return True
            if fault.kind == "raw":
                self.send(200, fault.body)
                return True
            return False

    return Handler
