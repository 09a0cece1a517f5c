"""The Microsoft Graph simulator: Entra ID's token endpoint and Graph v1.0 over HTTPS on loopback.

It serves the same `Organisation` as the EWS simulator (same data file, same runtime changes), so the
two backends can be compared item by item. Served:

- GET  /{tenant}/v2.0/.well-known/openid-configuration   (msal's tenant discovery)
- POST /{tenant}/oauth2/v2.0/token   client credentials with client_secret or a certificate assertion
- GET  /v1.0/users/{id}/calendarView/delta   startDateTime/endDateTime, then $skiptoken / $deltatoken
- GET  /v1.0/users/{id}/events/{id}
- GET  /v1.0/users/{id}/contacts/delta, /contactFolders, /contactFolders/{id}/childFolders,
  /contactFolders/{id}/contacts/delta
- POST/GET/PATCH/DELETE /v1.0/subscriptions[/{id}]: change notifications POSTed to a loopback
  notificationUrl, validation handshake, lifecycle events (`graph_subscriptions`; `sim.subscriptions`)
- POST /v1.0/$batch: JSON batching of the requests above, up to 20 per call (`graph_batch`)
- GET  /v1.0/groups?$filter=mail eq '...', /v1.0/groups/{id}/transitiveMembers   (`graph_groups`)
- POST /v1.0/users/{id}/sendMail: kept in `sim.outbox`, also at GET /_simulator/outbox (`outbox`)
Delta state is kept server-side per token, as Graph does (`graph_delta`); tokens come from the
simulated Entra ID (`graph_auth`); this module routes requests and renders faults. Faults come from
`org.inject_fault` with these operation names: "token", "calendarView.delta", "contacts.delta",
"events", "contactFolders", "groups", "subscriptions", "$batch" (the whole batch; a fault of an operation
inside a batch answers inside it); plus `expire_tokens()`, `revoke_credentials()`, `forget_delta_tokens()` and
`endless_next_links`.

Over 400 lines on purpose: one routing table of Graph v1.0 paths over HTTPS; the token endpoint, delta rounds,
subscriptions and $batch live in their own modules.
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from pbxsync.sync.listen import loopback_port
from pbxsync.sync.simulator.faults import Fault
from pbxsync.sync.simulator.graph_auth import AppRegistration, TokenAuthority
from pbxsync.sync.simulator.graph_batch import run_batch
from pbxsync.sync.simulator.graph_delta import DeltaRounds, contacts_folder_id
from pbxsync.sync.simulator.graph_groups import find_groups, transitive_members
from pbxsync.sync.simulator.graph_json import HttpError, error_body, event_json, master_json
from pbxsync.sync.simulator.graph_subscriptions import SubscriptionService
from pbxsync.sync.simulator.graph_tls import TlsFiles, make_server_tls
from pbxsync.sync.simulator.graph_writes import patch_event
from pbxsync.sync.simulator.organisation import NoSuchItem, NoSuchMailbox, Organisation
from pbxsync.sync.simulator.outbox import OUTBOX_PATH, MailRefused, Outbox, graph_send_mail
from pbxsync.sync.simulator.records import OccurrenceView
from pbxsync.sync.simulator.serving import BackgroundServer
from pbxsync.sync.simulator.zones import resolve_timezone

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10  # Graph's default for calendarView delta pages


class GraphSimulator(BackgroundServer):
    """HTTPS server on 127.0.0.1. `start()`/`stop()` or a context manager; thread-safe."""

    def __init__(self, org: Organisation, app: AppRegistration | None = None, *, tls_dir: str | Path,
                 port: int = 0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.org = org
        self.clock = clock
        self.tls: TlsFiles = make_server_tls(tls_dir)
        httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        super().__init__(httpd, "graph-simulator")
        self.auth = TokenAuthority(app or AppRegistration(), self.base_url, clock)
        self.deltas = DeltaRounds(org, self.graph_endpoint)
        self.subscriptions = SubscriptionService(org, clock, self.app.tenant_id, self.app.client_id)
        self.outbox = Outbox()

    def start(self) -> Self:
        self.subscriptions.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.subscriptions.stop()

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

    @property
    def app(self) -> AppRegistration:
        return self.auth.app

    # ---- test controls

    def expire_tokens(self) -> None:
        """Every issued access token is now invalid (as after a key rollover); new ones are issued."""
        self.auth.expire_tokens()

    def revoke_credentials(self) -> None:
        """The app's secret/certificate is revoked: no new tokens, and issued ones stop working."""
        self.auth.revoke_credentials()

    def restore_credentials(self) -> None:
        self.auth.restore_credentials()

    def forget_delta_tokens(self) -> None:
        """Every delta/skip token is gone: the next request with one gets 410 Gone."""
        self.deltas.forget()

    @property
    def endless_next_links(self) -> bool:
        """Every page links to another, as a misbehaving server might (the client must stop)."""
        return self.deltas.endless_next_links

    @endless_next_links.setter
    def endless_next_links(self, value: bool) -> None:
        self.deltas.endless_next_links = value

    # ---- Graph

    def _fault(self, operation: str, mailbox: str) -> None:
        fault = self.org.take_fault(operation, mailbox)
        if fault is not None:
            raise _render_fault(fault, mailbox)

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

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: object) -> tuple[int, dict[str, str], object]:
        """One Graph request, also one inside a $batch: (status, headers, JSON body or None)."""
        self.auth.check_bearer(headers.get("authorization"))
        parts = [unquote(p) for p in path.split("/") if p]
        if parts[:2] == ["v1.0", "subscriptions"]:
            self._fault("subscriptions", "")
            return self.subscriptions.route(method, parts[2:], body, self.graph_endpoint)
        if parts == ["v1.0", "$batch"] and method == "POST":
            self.org.counters.count("$batch")
            self._fault("$batch", "")
            return 200, {}, run_batch(body, lambda m, u, h, b: self._batched(m, u, h, b, headers))
        if method == "POST" and len(parts) == 4 and parts[:2] == ["v1.0", "users"] and parts[3] == "sendMail":
            return self.send_mail(parts[2].lower(), body, self.auth.roles_of(headers.get("authorization")))
        if method == "PATCH" and len(parts) == 5 and parts[:2] == ["v1.0", "users"] and parts[3] == "events":
            mailbox = parts[2].lower()
            self.org.counters.count("events.patch", mailbox)
            self._fault("events.patch", mailbox)
            patch_event(self.org, mailbox, parts[4], headers, body)
            return 200, {}, self.event(mailbox, parts[4])
        if method != "GET":
            raise HttpError(405, error_body("BadRequest", f"{method} is not supported for this resource."))
        return 200, {}, self.handle_get(path, query, headers)

    def send_mail(self, mailbox: str, body: object, roles: tuple[str, ...]) -> tuple[int, dict[str, str], object]:
        """POST /users/{id}/sendMail: 202 Accepted, no body; the message goes to `self.outbox`. Needs the
        application permission Mail.Send (403 ErrorAccessDenied without it, as Graph answers)."""
        self.org.counters.count("sendMail", mailbox)
        self._fault("sendMail", mailbox)
        if "Mail.Send" not in roles:
            raise HttpError(403, error_body("ErrorAccessDenied", "Access is denied. Check credentials and try again."))
        if not self.org.has_mailbox(mailbox):
            raise HttpError(404, error_body("ErrorInvalidUser", f"The requested user '{mailbox}' is invalid."))
        try:
            graph_send_mail(mailbox, body, self.outbox)
        except MailRefused as exc:
            status = 403 if exc.code == "ErrorSendAsDenied" else 400
            raise HttpError(status, error_body(exc.code, exc.message)) from None
        return 202, {}, None

    def _batched(self, method: str, url: str, headers: dict[str, str], body: object,
                 outer: dict[str, str]) -> tuple[int, dict[str, str], object]:
        """One request of a batch: the batch's credentials, its own status, headers and body."""
        split = urlsplit(url)
        if split.path.rstrip("/") == "/$batch":
            return 400, {}, error_body("BadRequest", "A batch cannot contain another batch.")
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        merged = {**{k.lower(): v for k, v in headers.items()}, "authorization": outer.get("authorization", "")}
        try:
            return self.handle(method, "/v1.0" + split.path, query, merged, body)
        except HttpError as exc:
            return exc.status, exc.headers, exc.body
        except _RawBody as raw:
            return 200, {}, raw.body.decode("utf-8", "replace")

    def contact_folders(self, mailbox: str, parent: str) -> dict[str, Any]:
        """`/contactFolders` (below the default Contacts folder) or `/contactFolders/{id}/childFolders`:
        the user's contact folders only; Exchange's hidden ones (Recipient Cache, ...) are not listed."""
        folders = self.org.contact_folders(mailbox)
        if parent and not any(f.folder_id == parent and f.is_phonebook for f in folders):
            raise HttpError(404, error_body("ErrorItemNotFound", "The specified object was not found in the store."))
        value = [{"id": f.folder_id, "displayName": f.name,
                  "parentFolderId": f.parent_id or contacts_folder_id(mailbox)}
                 for f in folders if f.parent_id == parent and f.is_phonebook]
        return {"@odata.context": f"{self.graph_endpoint}/$metadata#users('{mailbox}')/contactFolders",
                "value": value}

    def handle_get(self, path: str, query: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        self.auth.check_bearer(headers.get("authorization"))
        parts = [unquote(p) for p in path.split("/") if p]
        if parts[:2] == ["v1.0", "groups"] and len(parts) in (2, 4):
            self.org.counters.count("groups", "")
            self._fault("groups", "")
            if len(parts) == 2:
                return find_groups(self.org, self.graph_endpoint, query)
            if parts[3] == "transitiveMembers":
                return transitive_members(self.org, self.graph_endpoint, parts[2], query)
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
                return self.deltas.calendar(mailbox, query, zone, zone_name, page_size)
            if rest == ["contacts", "delta"]:
                return self.deltas.contacts(mailbox, "", query, page_size)
            if len(rest) == 2 and rest[0] == "events":
                return self.event(mailbox, rest[1])
            if rest == ["contactFolders"] or (len(rest) == 3 and rest[0] == "contactFolders"
                                              and rest[2] == "childFolders"):
                return self.contact_folders(mailbox, rest[1] if len(rest) == 3 else "")
            if len(rest) == 4 and rest[0] == "contactFolders" and rest[2:] == ["contacts", "delta"]:
                return self.deltas.contacts(mailbox, rest[1], query, page_size)
        except NoSuchMailbox:
            raise HttpError(404, error_body("ErrorInvalidUser",
                                            f"The requested user '{mailbox}' is invalid.")) from None
        raise HttpError(400, error_body("BadRequest", f"Resource not found for the segment '{rest[0][:40]}'."))


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
            self._answer(lambda: (200, {}, work()))

        def _answer(self, work: Callable[[], tuple[int, dict[str, str], object]]) -> None:
            try:
                status, headers, result = work()
            except HttpError as exc:
                self._send(exc.status, json.dumps(exc.body).encode(), exc.headers)
                return
            except _RawBody as raw:
                self._send(200, raw.body)
                return
            body = b"" if result is None else json.dumps(result, ensure_ascii=False).encode("utf-8")
            self._send(status, body, headers)

        def _graph(self, method: str, body: bytes) -> None:
            """Subscriptions, $batch and the other non-token requests, whatever the method."""
            split = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}

            def work() -> tuple[int, dict[str, str], object]:
                try:
                    document = json.loads(body) if body else None
                except ValueError:
                    raise HttpError(400, error_body("BadRequest", "The request body is not valid JSON.")) from None
                return sim.handle(method, split.path, query, headers, document)

            self._answer(work)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(min(length, 1 << 20))

        def do_PATCH(self) -> None:
            self._graph("PATCH", self._body())

        def do_DELETE(self) -> None:
            self._graph("DELETE", self._body())

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            parts = [p for p in split.path.split("/") if p]
            if split.path == OUTBOX_PATH:  # the control interface (loopback test peer)
                self._run(lambda: {"value": sim.outbox.as_json()})
                return
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                sim.org.counters.count("openid-configuration")
                self._run(lambda: sim.auth.openid_configuration(parts[0]))
                return
            if parts[:2] == ["v1.0", "subscriptions"]:
                self._graph("GET", b"")
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._run(lambda: sim.handle_get(split.path, query, headers))

        def do_POST(self) -> None:
            body = self._body()
            raw = body.decode("utf-8", "replace")
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            if parts[:1] == ["v1.0"]:
                self._graph("POST", body)
                return
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                sim.org.counters.count("token", form.get("client_id", ""))

                def token() -> dict[str, Any]:
                    fault = sim.org.take_fault("token", None)
                    if fault is not None:
                        raise _render_fault(fault, "")
                    return sim.auth.issue_token(parts[0], form)

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
    """`python -m pbxsync.sync.simulator.graph_server --data FILE --listen 127.0.0.1:PORT --tls-dir DIR`."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m pbxsync.sync.simulator.graph_server",
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
