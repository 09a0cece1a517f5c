"""App-only OAuth for Microsoft Graph: msal's client-credentials flow, cached and refreshed by msal.

msal's ConfidentialClientApplication does a network call (OpenID discovery) when it is built and is
synchronous, so it is built lazily and always called from a worker thread (`asyncio.to_thread`).
msal only accepts https authorities; tests point it at the Graph simulator's TLS endpoint with
`ca_file`. Every failure becomes a one-line `SourceAuthError` that never contains the secret.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from pbxsync.sync.errors import SourceAuthError, SourceError
from pbxsync.sync.secrets import Secret

_AADSTS = re.compile(r"AADSTS\d{4,8}")


class PinnedSession(requests.Session):
    """A Session whose TLS verification is what the config says, always.

    requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override `Session.verify` (psf/requests#3829), which
    would silently replace the configured `ca_file`; passing `verify` on every request prevents that.
    """

    def __init__(self, verify: bool | str, timeout_seconds: float) -> None:
        super().__init__()
        self.verify = verify
        self._pinned_verify = verify
        self._timeout_seconds = timeout_seconds

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self._pinned_verify
        kwargs.setdefault("timeout", self._timeout_seconds)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AppCredentials:
    """What identifies the app to Microsoft Entra ID. The secret stays a `Secret` until msal needs it."""

    authority: str  # e.g. https://login.microsoftonline.com
    tenant_id: str
    client_id: str
    client_secret: Secret | None = None
    certificate_file: str = ""
    private_key_file: str = ""
    scope: str = "https://graph.microsoft.com/.default"
    verify: bool | str = True  # True, False or a CA bundle path
    timeout_seconds: float = 60.0

    @property
    def authority_url(self) -> str:
        return f"{self.authority.rstrip('/')}/{self.tenant_id}"


def scope_for(graph_endpoint: str) -> str:
    """The app-only scope of a Graph endpoint: its origin plus `/.default` (national clouds differ)."""
    parts = urlsplit(graph_endpoint)
    return f"{parts.scheme}://{parts.netloc}/.default"


class TokenProvider:
    """Hands out bearer tokens; msal keeps them in its in-memory cache until 5 minutes before expiry."""

    def __init__(self, credentials: AppCredentials) -> None:
        self._credentials = credentials
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()  # msal apps are not documented as thread-safe

    def _client_credential(self) -> str | dict[str, str]:
        c = self._credentials
        if c.certificate_file and c.private_key_file:
            try:
                private_key = Path(c.private_key_file).read_text(encoding="utf-8")
                certificate = Path(c.certificate_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SourceAuthError(f"Graph: cannot read the app certificate or key: "
                                      f"{exc.strerror or type(exc).__name__}") from None
            # With public_certificate and no thumbprint msal signs PS256 with an x5t#S256 header.
            return {"private_key": private_key, "public_certificate": certificate}
        if c.client_secret:
            return c.client_secret.reveal()
        raise SourceAuthError("Graph: no client secret or certificate configured")

    def _build(self) -> msal.ConfidentialClientApplication:
        c = self._credentials
        host = urlsplit(c.authority).hostname or ""
        try:
            return msal.ConfidentialClientApplication(
                c.client_id,
                client_credential=self._client_credential(),
                authority=c.authority_url,
                # Instance discovery only knows Microsoft's own hosts; any other authority (a test
                # simulator, a sovereign cloud msal does not list yet) is the admin's explicit choice.
                instance_discovery=None if host in WELL_KNOWN_AUTHORITY_HOSTS else False,
                http_client=PinnedSession(c.verify, c.timeout_seconds),
            )
        except SourceError:
            raise
        except ValueError as exc:
            raise SourceAuthError(f"Graph: the authority {c.authority_url} is not usable: "
                                  f"{_first_line(str(exc))}") from None
        except Exception as exc:  # requests' connection and TLS errors, key parsing errors
            raise SourceAuthError(f"Graph: cannot reach the authority {c.authority_url}: "
                                  f"{type(exc).__name__}") from None

    def token(self) -> str:
        """A valid access token (blocking; call through asyncio.to_thread)."""
        with self._lock:
            if self._app is None:
                self._app = self._build()
            try:
                result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self._credentials.scope])
            except Exception as exc:
                raise SourceAuthError(f"Graph: token request to {self._credentials.authority_url} failed: "
                                      f"{type(exc).__name__}") from None
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        raise SourceAuthError(describe_token_error(result, self._credentials))

    def forget(self) -> None:
        """Drop cached tokens (Graph said 401: revoked or expired early); the next call asks anew."""
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()


def describe_token_error(result: dict[str, Any], credentials: AppCredentials) -> str:
    """One line naming the OAuth error and its AADSTS code; error_description may hold trace ids."""
    error = str(result.get("error") or "no access token")[:60]
    codes = _AADSTS.findall(str(result.get("error_description") or ""))
    code = f" ({codes[0]})" if codes else ""
    hint = {
        "invalid_client": "client secret or certificate wrong, expired or revoked",
        "unauthorized_client": "app disabled or not allowed in this tenant",
        "invalid_request": "tenant or request rejected",
    }.get(error, "")
    return (f"Graph: Entra ID refused the app {credentials.client_id} in tenant {credentials.tenant_id}: "
            f"{error}{code}" + (f" - {hint}" if hint else ""))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "unknown error"
