"""The simulated Entra ID: the app registration, its token endpoint and the bearer tokens it issued.

Client credentials with a client secret or a certificate assertion (a JWT signed with the app's key, as
msal sends it); errors carry Entra ID's AADSTS codes and texts. Tests can expire every token (a key
rollover) or revoke the app's credentials. Thread-safe.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pbxsync.sync.simulator.graph_json import HttpError, error_body
from pbxsync.sync.simulator.ids import b64url


@dataclass
class AppRegistration:
    """The simulated Entra ID app: its secret and/or certificate (PEM)."""

    tenant_id: str = "00000000-0000-0000-0000-0000000000aa"
    client_id: str = "00000000-0000-0000-0000-0000000000bb"
    client_secret: str = "sim-secret"
    certificate_pem: bytes = b""
    token_lifetime: timedelta = timedelta(seconds=3599)
    # The application permissions granted with admin consent: the `roles` claim of its access tokens.
    roles: tuple[str, ...] = ("Calendars.ReadWrite", "Contacts.Read", "Mail.Send")


@dataclass
class _IssuedToken:
    expires: datetime
    generation: int


def _access_token(app: AppRegistration, expires: datetime) -> str:
    """Shaped like Entra ID's: a JWT whose claims a client may read (`roles`: the granted application
    permissions), signed with a random key nobody checks (Graph checks it; here the token is looked up)."""
    claims = {"aud": "https://graph.microsoft.com", "iss": f"https://sts.windows.net/{app.tenant_id}/",
              "tid": app.tenant_id, "appid": app.client_id, "roles": list(app.roles),
              "exp": int(expires.timestamp()), "uti": b64url(secrets.token_bytes(16))}
    return jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")


class TokenAuthority:
    """Issues and checks access tokens for one app. `base_url` is the authority's address (msal appends
    the tenant); a certificate assertion must name its token endpoint as audience."""

    def __init__(self, app: AppRegistration, base_url: str, clock: Callable[[], datetime]) -> None:
        self.app = app
        self.base_url = base_url
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _IssuedToken] = {}
        self._generation = 0
        self._revoked = False

    # ---- test controls

    def expire_tokens(self) -> None:
        with self._lock:
            self._generation += 1

    def revoke_credentials(self) -> None:
        with self._lock:
            self._revoked = True
            self._generation += 1

    def restore_credentials(self) -> None:
        with self._lock:
            self._revoked = False

    # ---- the token endpoint

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
            if self._revoked:
                raise self._token_error(401, "invalid_client", 7000222, "The provided client secret keys "
                                        f"for app '{app.client_id}' are expired.")
            lifetime = app.token_lifetime
            expires = self.clock() + lifetime
            token = _access_token(app, expires)
            self._tokens[token] = _IssuedToken(expires, self._generation)
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
            thumb_ok = (str(header.get("x5t#S256", "")).rstrip("=") == b64url(cert.fingerprint(hashes.SHA256()))
                        or str(header.get("x5t", "")).rstrip("=")
                        == b64url(cert.fingerprint(hashes.SHA1())))  # noqa: S303 - what Entra ID uses
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["PS256", "RS256"],  # type: ignore[arg-type]
                                audience=f"{self.base_url}/{app.tenant_id}/oauth2/v2.0/token",
                                issuer=app.client_id, options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.PyJWTError:
            raise self._token_error(401, "invalid_client", 700027, "Client assertion contains an invalid "
                                    "signature.") from None
        if not thumb_ok or claims.get("sub") != app.client_id:
            raise self._token_error(401, "invalid_client", 700027, "Client assertion contains an invalid "
                                    "signature: [Reason - The key was not found.]")

    # ---- Graph requests

    def roles_of(self, header: str | None) -> tuple[str, ...]:
        """The application permissions of a valid bearer token (after `check_bearer`)."""
        token = (header or "")[7:]
        claims = jwt.decode(token, options={"verify_signature": False})
        return tuple(str(r) for r in claims.get("roles", ()))

    def check_bearer(self, header: str | None) -> None:
        """Raises the 401 Graph answers unless `header` carries a token issued, unexpired and not revoked."""
        invalid = HttpError(401, error_body("InvalidAuthenticationToken",
                                            "Access token has expired or is not yet valid."),
                            {"WWW-Authenticate": 'Bearer realm="", error="invalid_token", '
                                                 'error_description="The access token has expired"'})
        if not header or not header.startswith("Bearer "):
            raise HttpError(401, error_body("InvalidAuthenticationToken", "Access token is empty."),
                            {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        with self._lock:
            issued = self._tokens.get(header[7:])
            if issued is None or issued.generation != self._generation or issued.expires <= self.clock():
                raise invalid
