"""The Microsoft Graph simulator: Entra ID's token endpoint and Graph v1.0 over HTTPS on loopback.

It serves the same `Organisation` as the EWS simulator (same data file, same runtime changes), so the
two backends can be compared item by item. Served:

- GET  /{tenant}/v2.0/.well-known/openid-configuration   (msal's tenant discovery)
- POST /{tenant}/oauth2/v2.0/token   client credentials with client_secret or a certificate assertion
- GET  /v1.0/users/{id}/calendarView/delta   startDateTime/endDateTime, then $skiptoken / $deltatoken
- GET  /v1.0/users/{id}/events/{id}
- GET  /v1.0/users/{id}/contacts/delta, /contactFolders, /contactFolders/{id}/childFolders,
  /contactFolders/{id}/contacts/delta
Delta state is kept server-side per token, as Graph does: a calendar token remembers the window and
the occurrence ids and change keys it has delivered, so the next round reports exactly what changed
and `@removed` for what left the window. Faults come from `org.inject_fault` with these operation
names: "token", "calendarView.delta", "contacts.delta", "events", "contactFolders"; plus
`expire_tokens()`, `revoke_credentials()`, `forget_delta_tokens()` and `endless_next_links`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pbxsync.sync.listen import loopback_port
from pbxsync.sync.simulator.graph_json import contact_json, error_body, event_json, master_json, removed_json
from pbxsync.sync.simulator.graph_tls import TlsFiles, make_server_tls
from pbxsync.sync.simulator.mailboxes import (
    ContactRecord,
    Fault,
    NoSuchItem,
    NoSuchMailbox,
    OccurrenceView,
    Organisation,
    resolve_timezone,
)
from pbxsync.sync.simulator.serving import BackgroundServer

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10  # Graph's default for calendarView delta pages
CONTACTS_FOLDER_PREFIX = "AAMkCF"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass
class _IssuedToken:
    expires: datetime
    generation: int


@dataclass
class _CalendarDelta:
    mailbox: str
    start: datetime
    end: datetime
    seq: int
    delivered: dict[str, str]  # occurrence id -> change key, as the client now knows it


@dataclass
class _ContactDelta:
    mailbox: str
    seq: int


@dataclass
class _PendingRound:
    """Rows of a round still to be paged out, and the token the last page ends with."""

    rows: list[dict[str, Any]]
    offset: int
    delta_token: str
    base: str  # the path the links repeat


@dataclass
class AppRegistration:
    """The simulated Entra ID app: its secret and/or certificate (PEM)."""

    tenant_id: str = "00000000-0000-0000-0000-0000000000aa"
    client_id: str = "00000000-0000-0000-0000-0000000000bb"
    client_secret: str = "sim-secret"
    certificate_pem: bytes = b""
    token_lifetime: timedelta = timedelta(seconds=3599)


@dataclass
class GraphState:
    tokens: dict[str, _IssuedToken] = field(default_factory=dict)
    calendar: dict[str, _CalendarDelta] = field(default_factory=dict)
    contacts: dict[str, _ContactDelta] = field(default_factory=dict)
    pending: dict[str, _PendingRound] = field(default_factory=dict)
    generation: int = 0
    revoked: bool = False


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class GraphSimulator(BackgroundServer):
    """HTTPS server on 127.0.0.1. `start()`/`stop()` or a context manager; thread-safe."""

    def __init__(self, org: Organisation, app: AppRegistration | None = None, *, tls_dir: str | Path,
                 port: int = 0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.org = org
        self.app = app or AppRegistration()
        self.clock = clock
        self.tls: TlsFiles = make_server_tls(tls_dir)
        self.state = GraphState()
        self.endless_next_links = False
        self._lock = threading.Lock()
        httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        super().__init__(httpd, "graph-simulator")

    # ---- lifecycle

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        """What goes into `[exchange] authority` (msal appends the tenant)."""
        return self.base_url

    @property
    def graph_endpoint(self) -> str:
        return f"{self.base_url}/v1.0"

    # ---- test controls

    def expire_tokens(self) -> None:
        """Every issued access token is now invalid (as after a key rollover); new ones are issued."""
        with self._lock:
            self.state.generation += 1

    def revoke_credentials(self) -> None:
        """The app's secret/certificate is revoked: no new tokens, and issued ones stop working."""
        with self._lock:
            self.state.revoked = True
            self.state.generation += 1

    def restore_credentials(self) -> None:
        with self._lock:
            self.state.revoked = False

    def forget_delta_tokens(self) -> None:
        """Every delta/skip token is gone: the next request with one gets 410 Gone."""
        with self._lock:
            self.state.calendar.clear()
            self.state.contacts.clear()
            self.state.pending.clear()

    # ---- token endpoint

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.base_url}/{tenant}"
        return {"token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": f"{self.base_url}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0", "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com"}

    def _token_error(self, status: int, error: str, code: int, text: str) -> HttpError:
        trace = str(uuid.uuid4())
        return HttpError(status, {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} "
                                 f"Timestamp: {self.clock().strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [code], "timestamp": self.clock().strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace, "correlation_id": trace,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"})

    def issue_token(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        app = self.app
        if tenant != app.tenant_id:
            raise self._token_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            raise self._token_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported "
                                    "grant type.")
        if form.get("client_id") != app.client_id:
            raise self._token_error(400, "unauthorized_client", 700016, "Application with identifier "
                                    f"'{form.get('client_id', '')}' was not found in the directory.")
        if not form.get("scope", "").endswith("/.default"):
            raise self._token_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid. "
                                    "Client credential flows must have a scope value with /.default.")
        if "client_assertion" in form:
            self._check_assertion(form)
        elif not app.client_secret or not secrets.compare_digest(form.get("client_secret", ""), app.client_secret):
            raise self._token_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the "
                                    "secret being sent in the request is the client secret value, not the "
                                    "client secret ID.")
        with self._lock:
            if self.state.revoked:
                raise self._token_error(401, "invalid_client", 7000222, "The provided client secret keys "
                                        f"for app '{app.client_id}' are expired.")
            token = _b64url(secrets.token_bytes(32))
            lifetime = app.token_lifetime
            self.state.tokens[token] = _IssuedToken(self.clock() + lifetime, self.state.generation)
        seconds = int(lifetime.total_seconds())
        return {"token_type": "Bearer", "expires_in": seconds, "ext_expires_in": seconds, "access_token": token}

    def _check_assertion(self, form: dict[str, str]) -> None:
        app = self.app
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise self._token_error(400, "invalid_request", 50027, "Invalid JWT token: assertion type.")
        if not app.certificate_pem:
            raise self._token_error(401, "invalid_client", 700027, "Client assertion contains an invalid "
                                    "signature: no certificate registered for the app.")
        cert = x509.load_pem_x509_certificate(app.certificate_pem)
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
            # msal pads its base64url thumbprints; Entra ID accepts both spellings
            thumb_ok = (str(header.get("x5t#S256", "")).rstrip("=") == _b64url(cert.fingerprint(hashes.SHA256()))
                        or str(header.get("x5t", "")).rstrip("=")
                        == _b64url(cert.fingerprint(hashes.SHA1())))  # noqa: S303 - what Entra ID uses
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["PS256", "RS256"],  # type: ignore[arg-type]
                                audience=f"{self.base_url}/{app.tenant_id}/oauth2/v2.0/token",
                                issuer=app.client_id, options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.PyJWTError:
            raise self._token_error(401, "invalid_client", 700027, "Client assertion contains an invalid "
                                    "signature.") from None
        if not thumb_ok or claims.get("sub") != app.client_id:
            raise self._token_error(401, "invalid_client", 700027, "Client assertion contains an invalid "
                                    "signature: [Reason - The key was not found.]")

    def check_bearer(self, header: str | None) -> None:
        invalid = HttpError(401, error_body("InvalidAuthenticationToken",
                                            "Access token has expired or is not yet valid."),
                            {"WWW-Authenticate": 'Bearer realm="", error="invalid_token", '
                                                 'error_description="The access token has expired"'})
        if not header or not header.startswith("Bearer "):
            raise HttpError(401, error_body("InvalidAuthenticationToken", "Access token is empty."),
                            {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        with self._lock:
            issued = self.state.tokens.get(header[7:])
            if issued is None or issued.generation != self.state.generation or issued.expires <= self.clock():
                raise invalid

    # ---- Graph

    def _fault(self, operation: str, mailbox: str) -> None:
        fault = self.org.take_fault(operation, mailbox)
        if fault is not None:
            raise _render_fault(fault, mailbox)

    def _new_id(self) -> str:
        return _b64url(secrets.token_bytes(18))

    def _page(self, round_id: str, page_size: int) -> dict[str, Any]:
        with self._lock:
            pending = self.state.pending.get(round_id)
            if pending is None:
                raise HttpError(410, error_body("SyncStateNotFound", "The sync state generation is not found."))
            rows = pending.rows[pending.offset:pending.offset + page_size]
            pending.offset += len(rows)
            done = pending.offset >= len(pending.rows)
            del self.state.pending[round_id]  # each page gets a fresh skiptoken, as Graph does
            round_id = self._new_id()
            if not done:
                self.state.pending[round_id] = pending
        body: dict[str, Any] = {"@odata.context": f"{self.graph_endpoint}/$metadata#Collection(event)",
                                "value": rows}
        if self.endless_next_links:
            with self._lock:
                next_id = self._new_id()
                self.state.pending[next_id] = _PendingRound([], 0, pending.delta_token, pending.base)
            body["@odata.nextLink"] = f"{self.graph_endpoint}{pending.base}?{urlencode({'$skiptoken': next_id})}"
        elif done:
            body["@odata.deltaLink"] = (f"{self.graph_endpoint}{pending.base}?"
                                        f"{urlencode({'$deltatoken': pending.delta_token})}")
        else:
            body["@odata.nextLink"] = f"{self.graph_endpoint}{pending.base}?{urlencode({'$skiptoken': round_id})}"
        return body

    def _start_round(self, rows: list[dict[str, Any]], delta_token: str, base: str, page_size: int) -> dict[str, Any]:
        round_id = self._new_id()
        with self._lock:
            self.state.pending[round_id] = _PendingRound(rows, 0, delta_token, base)
        return self._page(round_id, page_size)

    def calendar_delta(self, mailbox: str, query: dict[str, str], zone: tzinfo, zone_name: str,
                       page_size: int) -> dict[str, Any]:
        base = f"/users/{mailbox}/calendarView/delta"
        if "$skiptoken" in query:
            return self._page(query["$skiptoken"], page_size)
        if "$deltatoken" in query:
            with self._lock:
                previous = self.state.calendar.get(query["$deltatoken"])
            if previous is None or previous.mailbox != mailbox:
                raise HttpError(410, error_body("SyncStateNotFound", "The sync state generation is not found."))
            start, end, delivered = previous.start, previous.end, previous.delivered
            changed = self.org.changes_since(mailbox, "calendar", previous.seq, 1)
            if not changed.changes:  # nothing happened in this folder: an empty round, cheaply
                token = self._new_id()
                with self._lock:
                    self.state.calendar[token] = _CalendarDelta(mailbox, start, end, changed.seq, delivered)
                return self._start_round([], token, base, page_size)
        else:
            try:
                start = _parse_instant(query["startDateTime"])
                end = _parse_instant(query["endDateTime"])
            except (KeyError, ValueError):
                raise HttpError(400, error_body("ErrorInvalidParameter", "The parameter 'startDateTime' or "
                                                "'endDateTime' is missing or invalid.")) from None
            delivered = {}
        seq = self.org.changes_since(mailbox, "calendar", 0, 1 << 30).seq  # the log position, before the view
        view = self.org.calendar_view(mailbox, start, end)
        current = {o.item_id: o for o in view}
        rows: list[dict[str, Any]] = [event_json(self.org, mailbox, o, zone, zone_name) for o in view
                                      if delivered.get(o.item_id) != o.change_key]
        rows += [removed_json("#microsoft.graph.event", i) for i in delivered if i not in current]
        token = self._new_id()
        with self._lock:
            self.state.calendar[token] = _CalendarDelta(mailbox, start, end, seq,
                                                        {i: o.change_key for i, o in current.items()})
        return self._start_round(rows, token, base, page_size)

    def contacts_delta(self, mailbox: str, folder_id: str, query: dict[str, str], page_size: int) -> dict[str, Any]:
        default_folder = contacts_folder_id(mailbox)
        if folder_id and folder_id != default_folder:
            raise HttpError(404, error_body("ErrorItemNotFound", "The specified object was not found in the store."))
        base = (f"/users/{mailbox}/contactFolders/{folder_id}/contacts/delta" if folder_id
                else f"/users/{mailbox}/contacts/delta")
        if "$skiptoken" in query:
            return self._page(query["$skiptoken"], page_size)
        seq = 0
        if "$deltatoken" in query:
            with self._lock:
                previous = self.state.contacts.get(query["$deltatoken"])
            if previous is None or previous.mailbox != mailbox:
                raise HttpError(410, error_body("SyncStateNotFound", "The sync state generation is not found."))
            seq = previous.seq
        rows: list[dict[str, Any]] = []
        while True:
            page = self.org.changes_since(mailbox, "contacts", seq, 1000)
            for change in page.changes:
                if change.kind == "delete":
                    if seq:  # a first round only lists what exists
                        rows.append(removed_json("#microsoft.graph.contact", change.item_id))
                elif isinstance(change.record, ContactRecord):
                    rows.append(contact_json(change.record, default_folder))
            seq = page.seq
            if page.includes_last:
                break
        token = self._new_id()
        with self._lock:
            self.state.contacts[token] = _ContactDelta(mailbox, seq)
        return self._start_round(rows, token, base, page_size)

    def event(self, mailbox: str, item_id: str) -> dict[str, Any]:
        try:
            found = self.org.calendar_item(mailbox, item_id)
        except NoSuchItem:
            raise HttpError(404, error_body("ErrorItemNotFound", "The specified object was not found in the "
                                            "store.")) from None
        if isinstance(found, OccurrenceView):
            return event_json(self.org, mailbox, found, UTC, "UTC")
        view = OccurrenceView(found.item_id, found.change_key, "single", found, found.start, found.end, None,
                              found.subject, found.location)
        return master_json(self.org, mailbox, view)

    def handle_get(self, path: str, query: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        self.check_bearer(headers.get("authorization"))
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) < 4 or parts[0] != "v1.0" or parts[1] != "users":
            raise HttpError(400, error_body("BadRequest", f"Resource not found for the segment '{path[:60]}'."))
        mailbox = parts[2].lower()
        rest = parts[3:]
        prefer = _prefer(headers.get("prefer", ""))
        page_size = max(1, min(MAX_PAGE_SIZE, int(prefer.get("odata.maxpagesize", DEFAULT_PAGE_SIZE))))
        zone_name = prefer.get("outlook.timezone", "UTC")
        try:
            zone = resolve_timezone(zone_name)
        except ValueError:
            raise HttpError(400, error_body("ErrorTimeZoneNotSupported", "Time zone not supported.")) from None
        if rest[:2] == ["calendarView", "delta"]:
            operation = "calendarView.delta"
        elif rest[0] == "events":
            operation = "events"
        else:
            operation = "contacts.delta" if rest[-1] == "delta" else "contactFolders"
        self.org.counters.count(operation, mailbox)
        self._fault(operation, mailbox)
        try:
            if not self.org.has_mailbox(mailbox):
                raise NoSuchMailbox(mailbox)
            if rest == ["calendarView", "delta"]:
                return self.calendar_delta(mailbox, query, zone, zone_name, page_size)
            if rest == ["contacts", "delta"]:
                return self.contacts_delta(mailbox, "", query, page_size)
            if len(rest) == 2 and rest[0] == "events":
                return self.event(mailbox, rest[1])
            if rest == ["contactFolders"] or (len(rest) == 3 and rest[0] == "contactFolders"
                                              and rest[2] == "childFolders"):
                # The simulated mailboxes hold one contacts folder: the default one has no children.
                return {"@odata.context": f"{self.graph_endpoint}/$metadata#users('{mailbox}')/contactFolders",
                        "value": []}
            if len(rest) == 4 and rest[0] == "contactFolders" and rest[2:] == ["contacts", "delta"]:
                return self.contacts_delta(mailbox, rest[1], query, page_size)
        except NoSuchMailbox:
            raise HttpError(404, error_body("ErrorInvalidUser",
                                            f"The requested user '{mailbox}' is invalid.")) from None
        raise HttpError(400, error_body("BadRequest", f"Resource not found for the segment '{rest[0][:40]}'."))


def contacts_folder_id(mailbox: str) -> str:
    return CONTACTS_FOLDER_PREFIX + _b64url(hashlib.sha256(f"{mailbox}|contacts".encode()).digest()[:24])


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _prefer(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key:
            out[key.strip().lower()] = value.strip().strip('"')
    return out


def _render_fault(fault: Fault, mailbox: str) -> HttpError:
    seconds = str(max(0, (fault.back_off_ms + 999) // 1000))
    if fault.kind == "server_busy":
        return HttpError(429, error_body("TooManyRequests", "Application is over its MailboxConcurrency limit."),
                         {"Retry-After": seconds})
    if fault.kind == "access_denied":
        return HttpError(403, error_body("ErrorAccessDenied", "Access is denied. Check credentials and try again."))
    if fault.kind == "nonexistent_mailbox":
        return HttpError(404, error_body("ErrorInvalidUser", f"The requested user '{mailbox}' is invalid."))
    if fault.kind == "unauthorized":
        return HttpError(401, error_body("InvalidAuthenticationToken", "Access token has expired or is not yet "
                                         "valid."), {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if fault.kind == "http_status":
        code = {410: "SyncStateNotFound", 503: "ServiceNotAvailable", 504: "GatewayTimeout",
                429: "TooManyRequests"}.get(fault.status, "InternalServerError")
        headers = {"Retry-After": seconds} if fault.status in (429, 503) else {}
        return HttpError(fault.status, error_body(code, f"Simulated HTTP {fault.status}."), headers)
    if fault.kind in ("malformed", "raw"):
        raise _RawBody(fault.body if fault.kind == "raw" else b'{"value": [{"id": "AAMk')
    return HttpError(500, error_body("InternalServerError", f"Simulated fault {fault.kind}."))


class _RawBody(Exception):
    def __init__(self, body: bytes) -> None:
        super().__init__("raw body")
        self.body = body


def _make_handler(sim: GraphSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "Microsoft-IIS/10.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("request-id", str(uuid.uuid4()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _run(self, work: Callable[[], dict[str, Any]]) -> None:
            try:
                result = work()
            except HttpError as exc:
                self._send(exc.status, json.dumps(exc.body).encode(), exc.headers)
                return
            except _RawBody as raw:
                self._send(200, raw.body)
                return
            self._send(200, json.dumps(result, ensure_ascii=False).encode("utf-8"))

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            parts = [p for p in split.path.split("/") if p]
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                sim.org.counters.count("openid-configuration")
                self._run(lambda: sim.openid_configuration(parts[0]))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._run(lambda: sim.handle_get(split.path, query, headers))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, 1 << 20)).decode("utf-8", "replace")
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                sim.org.counters.count("token", form.get("client_id", ""))

                def token() -> dict[str, Any]:
                    fault = sim.org.take_fault("token", None)
                    if fault is not None:
                        raise _render_fault(fault, "")
                    return sim.issue_token(parts[0], form)

                self._run(token)
                return
            self._send(404, json.dumps(error_body("NotFound", "Not found.")).encode())

    return Handler


def config_snippet(sim: GraphSimulator) -> str:
    """The [exchange] section that points pbxsync at this simulator."""
    return (f'[exchange]\nbackend = "graph"\ntenant_id = "{sim.app.tenant_id}"\nclient_id = "{sim.app.client_id}"\n'
            f'client_secret = "{sim.app.client_secret}"\nauthority = "{sim.authority}"\n'
            f'graph_endpoint = "{sim.graph_endpoint}"\nca_file = "{sim.tls.ca_file}"\n')


def main(argv: list[str] | None = None, stop: threading.Event | None = None) -> int:
    """`python -m sync.simulator.graph_server --data FILE --listen 127.0.0.1:PORT --tls-dir DIR`."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m sync.simulator.graph_server",
                                     description="Simulated Entra ID token endpoint + Graph (HTTPS, loopback)")
    parser.add_argument("--data", required=True, metavar="FILE", help="mailbox data file (docs/exchange-ews.md)")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="127.0.0.1:PORT")
    parser.add_argument("--tls-dir", default="", metavar="DIR", help="where the CA file is written (default: temp)")
    parser.add_argument("--ews-listen", default="", metavar="127.0.0.1:PORT",
                        help="also serve the same mailboxes over EWS (to compare the backends on one data set)")
    args = parser.parse_args(argv)
    port = loopback_port(args.listen)
    if port is None:
        parser.error(f"--listen: expected 127.0.0.1:PORT (loopback only), got {args.listen!r}")
    org = Organisation.load_file(args.data)
    sim = GraphSimulator(org, tls_dir=args.tls_dir or tempfile.mkdtemp(prefix="graph-sim-"), port=port).start()
    ews = None
    if args.ews_listen:
        from pbxsync.sync.simulator.ews_server import EwsSimulator

        ews_port = loopback_port(args.ews_listen)
        if ews_port is None:
            parser.error(f"--ews-listen: expected 127.0.0.1:PORT, got {args.ews_listen!r}")
        ews = EwsSimulator(org, port=ews_port).start()
        print(f"EWS simulator:   {ews.ews_url}", flush=True)
    print(f"Graph simulator: {sim.graph_endpoint}\ntoken endpoint:  {sim.authority}/{sim.app.tenant_id}"
          f"/oauth2/v2.0/token\nmailboxes:       {', '.join(u.email for u in org.users())}\n\n"
          f"{config_snippet(sim)}", flush=True)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        if ews is not None:
            ews.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
