"""Signing in from a browser with the external OIDC issuer: the authorization-code flow.

``begin`` makes a fresh state, nonce and PKCE verifier (S256), seals them
(AES-GCM under a service secret, with the page to return to and a ten-minute
end) into the value of a cookie the browser carries to the issuer and back,
and gives the issuer's authorization URL; the server keeps nothing.
``finish`` takes the callback: its state must be the sealed one (compared in
constant time) before anything else is believed, the code is exchanged at the
issuer's token endpoint with the verifier (and the client's secret), and the
ID token is verified and mapped by ``ExternalIssuer.sign_in`` (signature by
the issuer's JWKS, issuer, audience = our client id, expiry, nonce; users,
organizations and roles as for bearer tokens). The OAuth client is Authlib's.

Not here: starting the session (``services.sessions``), cookies and pages
(``api.web``).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from runtools.server.authn.external import ExternalIssuer, IssuerUnavailable
from runtools.server.authn.signing import InvalidToken
from runtools.server.domain.clock import Clock
from runtools.server.settings import Settings

#: How long a started sign-in may take at the issuer.
PENDING_SECONDS = 600
_AAD = b"runtools/oidc-sign-in/v1"
_NONCE_BYTES = 12


class SignInRefused(Exception):
    """The sign-in did not complete: ``message`` is for the person, ``reason`` for the log."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Pending:
    """A sign-in under way at the issuer, as the browser's cookie carries it (sealed)."""

    state: str
    nonce: str
    verifier: str
    next: str
    until: int


@dataclass(frozen=True)
class SignedIn:
    """Whom the issuer vouched for, mapped to local ones, and where they were going."""

    user_id: str
    org_id: str
    next: str


class OidcSignIn:
    def __init__(self, settings: Settings, external: ExternalIssuer, secret: bytes, clock: Clock):
        assert settings.oidc_client_id
        self._settings = settings
        self._external = external
        self._clock = clock
        issuer = external.issuer
        self.name = settings.oidc_display_name or urlsplit(issuer).netloc or issuer
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_AAD).derive(secret)

    # -- the pending sign-in, sealed into a cookie -----------------------------------

    def _seal(self, pending: Pending) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._key).encrypt(nonce, json.dumps(asdict(pending)).encode(), _AAD)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def _open(self, cookie: str) -> Pending | None:
        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            opened = AESGCM(self._key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD)
            pending = Pending(**json.loads(opened))
        except (InvalidTag, ValueError, TypeError):
            return None
        return pending if self._clock.timestamp() < pending.until else None

    # -- the flow --------------------------------------------------------------------

    def _endpoints(self) -> dict[str, Any]:
        try:
            return self._external.metadata()
        except IssuerUnavailable as exc:
            raise SignInRefused(
                f"{self.name} cannot be reached just now; please try again later.",
                "issuer_unavailable",
            ) from exc

    def _client(self, redirect_uri: str) -> OAuth2Client:
        secret = self._settings.oidc_client_secret
        scopes = self._settings.oidc_scopes.split()
        return OAuth2Client(
            client_id=self._settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
            scope=" ".join(["openid", *(s for s in scopes if s != "openid")]),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10.0,
            follow_redirects=False,
        )

    def begin(self, redirect_uri: str, next: str) -> tuple[str, str]:
        """The issuer's authorization URL, and the cookie value that must come back with it."""
        endpoints = self._endpoints()
        pending = Pending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=generate_token(64),
            next=next,
            until=int(self._clock.timestamp()) + PENDING_SECONDS,
        )
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                str(endpoints["authorization_endpoint"]),
                state=pending.state,
                code_verifier=pending.verifier,
                nonce=pending.nonce,
            )
        return str(url), self._seal(pending)

    def finish(
        self, cookie: str, redirect_uri: str, *, state: str, code: str, error: str
    ) -> SignedIn:
        """Whom the issuer signed in, once the callback is shown to answer our request."""
        pending = self._open(cookie) if cookie else None
        if pending is None:
            raise SignInRefused(
                "That sign-in expired or was not started in this browser; please try again.",
                "no_pending_sign_in",
            )
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise SignInRefused(
                "That sign-in answer was not for this browser's sign-in; please try again.",
                "wrong_state",
            )
        if error == "access_denied":
            raise SignInRefused(f"Sign-in with {self.name} was cancelled or denied.", error)
        if error or not code:
            reason = (error or "no_code")[:64]
            raise SignInRefused(f"{self.name} did not sign you in ({reason}).", reason)
        endpoints = self._endpoints()
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(
                    str(endpoints["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.verifier,
                )
        except (OAuthError, httpx.HTTPError, ValueError, KeyError) as exc:
            raise SignInRefused(
                f"{self.name} did not complete the sign-in; please try again.",
                "token_exchange_failed",
            ) from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused(f"{self.name} sent no identity; please try again.", "no_id_token")
        try:
            user_id, org_id = self._external.sign_in(id_token, pending.nonce)
        except InvalidToken as exc:
            raise SignInRefused(
                f"The identity {self.name} sent could not be verified.", exc.reason
            ) from exc
        return SignedIn(user_id=user_id, org_id=org_id, next=pending.next)
