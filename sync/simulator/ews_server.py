"""A simulated Exchange server speaking EWS SOAP (and SOAP autodiscover) over HTTP on loopback.

exchangelib runs against it unmodified. Start it in-process:

    org = Organisation.load_file("tests/data/mailboxes.json")
    with EwsSimulator(org) as sim:          # binds 127.0.0.1, port 0 = any free port
        sim.ews_url                          # http://127.0.0.1:PORT/EWS/Exchange.asmx
        sim.autodiscover_url                 # http://127.0.0.1:PORT/autodiscover/autodiscover.svc
        org.counters.get("SyncFolderItems")  # requests served, by operation (and mailbox)

Operations: GetFolder, FindFolder (below Contacts), FindItem (CalendarView, IndexedPageItemView), GetItem,
SyncFolderItems, ResolveNames, ExpandDL, CreateItem of Messages (kept in `sim.outbox`, also at
GET /_simulator/outbox: `sync.simulator.outbox`), autodiscover GetUserSettings; streaming notifications (Subscribe,
GetStreamingEvents, Unsubscribe) in `sync.simulator.ews_streaming`, reached as `sim.streaming`.
Authentication is HTTP Basic (NTLM is not offered; see docs/exchange-ews.md). ExchangeImpersonation is
honoured for users with `can_impersonate`.
Faults injected with `Organisation.inject_fault` are rendered as Exchange does: SOAP faults
(ErrorServerBusy with BackOffMilliseconds, ErrorImpersonateUserDenied, ErrorNonExistentMailbox),
ResponseMessage errors (ErrorAccessDenied), HTTP 401, other HTTP statuses, malformed bodies.

This module is the HTTP side (authentication, SOAP envelopes, autodiscover, injected faults); the
operations themselves are `ews_operations`.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from pbxsync.sync.simulator.ews_operations import (
    EwsOperations,
    EwsRequest,
    MessageError,
    SoapFault,
    error_message,
    success_message,
)
from pbxsync.sync.simulator.ews_xml import AUTODISCOVER_NS, MESSAGES_NS, SOAP_NS, TYPES_NS, esc, text_of
from pbxsync.sync.simulator.faults import Fault
from pbxsync.sync.simulator.organisation import Organisation
from pbxsync.sync.simulator.outbox import OUTBOX_PATH, MailRefused, Outbox, ews_create_messages
from pbxsync.sync.simulator.records import User
from pbxsync.sync.simulator.serving import BackgroundServer

log = logging.getLogger("pbxsync.simulator.ews")

EWS_PATH = "/ews/exchange.asmx"
STREAMING_OPERATIONS = ("Subscribe", "GetStreamingEvents", "Unsubscribe")  # sync.simulator.ews_streaming
STREAMING_DROP_PATH = "/_simulator/streaming/drop"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
MAX_REQUEST_BYTES = 8 * 1024 * 1024

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
        from pbxsync.sync.simulator.ews_streaming import StreamingHub

        self.org = org
        self.server_version = server_version
        super().__init__(QuietHTTPServer((host, port), _make_handler(self)), "ews-simulator")
        self.streaming = StreamingHub(self)
        self.outbox = Outbox()

    def stop(self) -> None:
        self.streaming.close()  # open GetStreamingEvents responses end (ConnectionStatus Closed)
        super().stop()

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

    def ews_body(self, request: EwsRequest, inner: str) -> str:
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

        def send(self, status: int, body: bytes, extra: dict[str, str] | None = None,
                 content_type: str = "text/xml; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
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
            if self.path.partition("?")[0].lower() == OUTBOX_PATH:  # the control interface (loopback test peer)
                self.send(200, json.dumps({"value": sim.outbox.as_json()}, ensure_ascii=False).encode(),
                          content_type="application/json; charset=utf-8")
                return
            self.send(405, b"", {"Allow": "POST"})

        def do_HEAD(self) -> None:
            self.send(405, b"", {"Allow": "POST"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            if length > MAX_REQUEST_BYTES:
                self.send(413, b"")
                return
            raw = self.rfile.read(length)
            path, _, query = self.path.partition("?")
            path = path.lower()
            if path == STREAMING_DROP_PATH and self.authenticated() is not None:
                mailbox = parse_qs(query).get("mailbox", [None])[0]
                self.send(200, f'{{"dropped": {sim.streaming.drop(mailbox)}}}'.encode())
                return
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
            email = text_of(mailbox).lower()
            self.send(200, sim.autodiscover_body(sim.org.user(email), email).encode())

        def ews(self, user: User, root: ET.Element) -> None:
            try:
                request = EwsRequest(sim.org, user, root)
                mailbox = request.mailbox_hint()
                sim.org.counters.count(request.operation, mailbox)
                fault = sim.org.take_fault(request.operation, mailbox)
                if fault is not None and self.render_fault(fault, request):
                    return
                request.authorise()
                if request.operation in STREAMING_OPERATIONS:
                    sim.streaming.handle(self, request)
                    return
                if request.operation == "CreateItem":
                    inner = self.create_item(request)
                else:
                    inner = EwsOperations(request, fault is not None and fault.kind == "duplicate_items").run()
                self.send(200, sim.ews_body(request, inner).encode("utf-8"))
            except SoapFault as exc:
                self.send(500, sim.fault_body(exc).encode("utf-8"))

        def create_item(self, request: EwsRequest) -> str:
            """CreateItem of Messages (mail sent as the request's principal) into `sim.outbox`."""
            try:
                count = ews_create_messages(request.payload, request.principal, sim.outbox)
            except MailRefused as exc:
                return error_message("CreateItem", MessageError(exc.code, exc.message))
            return success_message("CreateItem", "<m:Items/>") * count

        def render_fault(self, fault: Fault, request: EwsRequest) -> bool:
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
                inner = error_message(request.operation, MessageError(
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
