"""An OpenID Connect provider for the tests, made of Authlib's server components on Flask.

It speaks the real protocol on a loopback socket: discovery, the
authorization endpoint (response type ``code``, PKCE ``S256`` required,
nonce required), the token endpoint (``client_secret_basic``) and the JWKS;
its ID tokens are signed with its own RSA key by Authlib. There is no login
form: the person it signs in is ``provider.person``, and ``deny`` makes it
answer ``access_denied`` as a person pressing "Cancel" would. ``id_token_claims``
overrides claims of the ID tokens it issues (another ``aud``, a past ``exp``),
``rogue_key`` signs them with a key it does not publish.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "runtools-dashboard"
CLIENT_SECRET = "a test client's secret"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile"}
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" if endpoint == "token" else True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    subject: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    made: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.made)

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Person:
    """Whom the provider signs in: its subject and the claims its ID token carries."""

    sub: str
    claims: dict[str, Any]

    def get_user_id(self) -> str:
        return self.sub


class Provider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "provider-1", "alg": "RS256"})
        self.rogue_key: RSAKey | None = None
        self.person = Person("alice-1", {})
        self.deny = False
        self.id_token_claims: dict[str, Any] = {}
        self.redirect_uris: list[str] = []
        self.codes: dict[str, Code] = {}
        self.token_requests = 0
        self.url = ""
        self.app = self._app()

    def _app(self) -> Flask:
        provider = self
        app = Flask("oidc-provider")

        def query_client(client_id: str) -> Client | None:
            if client_id != CLIENT_ID:
                return None
            return Client(CLIENT_ID, CLIENT_SECRET, provider.redirect_uris)

        server = AuthorizationServer(app, query_client=query_client, save_token=lambda t, r: None)

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                provider.codes[code] = Code(
                    code=code,
                    client_id=req.client.get_client_id(),
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    subject=req.user.sub,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> Person:
                return provider.person

        class IdTokens(OpenIDCode):  # type: ignore[misc]
            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.rogue_key or provider.key

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "provider-1"}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                now = int(time.time())
                return {
                    "iss": provider.url,
                    "aud": [client.get_client_id()],
                    "iat": now,
                    "exp": now + 300,
                }

            def generate_user_info(self, user: Person, scope: str) -> UserInfo:
                # Applied last, so id_token_claims override even iss, aud, exp and nonce.
                return UserInfo({"sub": user.sub, **user.claims, **provider.id_token_claims})

        server.register_grant(
            CodeGrant, [IdTokens(require_nonce=True), CodeChallenge(required=True)]
        )

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=provider.url,
                authorization_endpoint=f"{provider.url}/authorize",
                token_endpoint=f"{provider.url}/token",
                jwks_uri=f"{provider.url}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
            )

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(KeySet([provider.key]).as_dict(private=False))

        @app.get("/authorize")
        def authorize() -> Any:
            # Whoever asks is signed in as ``person`` (or refused): no form to fill in.
            try:
                grant = server.get_consent_grant(end_user=provider.person)
            except OAuth2Error as error:  # no redirect for a request it cannot trust
                return jsonify(error=error.error, error_description=error.description), 400
            person = None if provider.deny else provider.person
            return server.create_authorization_response(grant_user=person, grant=grant)

        @app.post("/token")
        def token() -> Any:
            provider.token_requests += 1
            return server.create_token_response()

        return app

    @contextmanager
    def running(self) -> Iterator[Provider]:
        served = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{served.server_port}"
        thread = threading.Thread(target=served.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            served.shutdown()
            thread.join(5)
