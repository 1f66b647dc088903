"""An external OIDC issuer, started by the test: its own keys, its JWKS over HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from runtools.server.app import create_app, runtime_of
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry

ISSUER = "https://issuer.example"
AUDIENCE = "runtools-self-hosted"


class Issuer:
    """A minimal OIDC issuer: signs tokens, serves its JWKS, can go offline."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "issuer-key-1"
        self.requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests += 1
                jwk = json.loads(RSAAlgorithm.to_jwk(issuer.key.public_key()))
                body = json.dumps({"keys": [{**jwk, "kid": issuer.kid, "alg": "RS256"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user_01H",
            "org_id": "org_01ACME",
            "role": "member",
            "email": "ext@example.com",
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        kid = claims.pop("kid", None) or self.kid
        payload.pop("kid", None)
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    running = Issuer()
    yield running
    running.stop()


@pytest.fixture
def client(issuer: Issuer, tmp_path: Path, database_url: str | None) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        _env_file=None,
        oidc_issuer=ISSUER,
        oidc_jwks_url=issuer.jwks_url,
        oidc_audience=AUDIENCE,
    )
    app = create_app(settings)
    yield TestClient(app, raise_server_exceptions=False)
    runtime_of(app).close()


def me(client: TestClient, token: str) -> httpx.Response:
    response: httpx.Response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    return response


def test_tokens_of_the_issuer_are_sessions_mapped_to_local_users_and_orgs(
    issuer: Issuer, client: TestClient, secret_registry: SecretRegistry
) -> None:
    token = secret_registry.add(issuer.token(role="admin", email_verified=True))
    response = me(client, token)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["organization"]["name"] == "org_01ACME"
    assert data["user"]["email"] == "ext@example.com"
    assert data["user"]["role"] == "admin"
    assert data["credential"]["type"] == "session"
    # The same subject later, demoted by the issuer: same local user, role follows the claim.
    again = me(client, secret_registry.add(issuer.token(role="viewer"))).json()["data"]
    assert again["user"]["id"] == data["user"]["id"]
    assert again["user"]["role"] == "member"
    # Sessions from the issuer manage keys like any session.
    created = client.post(
        "/v1/api-keys",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "from-sso", "scopes": ["sandbox:read"]},
    )
    assert created.status_code == 201
    secret_registry.add(created.json()["data"]["key"])


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"iss": "https://other.example"},
        {"exp": 1},
        {"nbf": int(time.time()) + 3600},
        {"org_id": None},
    ],
    ids=["audience", "issuer", "expired", "not-yet-valid", "no-org"],
)
def test_bad_tokens_of_the_issuer_are_refused(
    issuer: Issuer, client: TestClient, claims: dict[str, Any]
) -> None:
    token = issuer.token(**claims)
    assert me(client, token).status_code == 401


def test_hmac_with_the_issuers_public_key_is_refused(issuer: Issuer, client: TestClient) -> None:
    from cryptography.hazmat.primitives import serialization

    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "org_id": "o", "exp": now + 60}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "kid": issuer.kid}).encode())
    body = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert me(client, f"{head}.{body}.{signature}").status_code == 401


def test_unknown_kids_cannot_amplify_into_jwks_fetches(
    issuer: Issuer, client: TestClient, secret_registry: SecretRegistry
) -> None:
    assert me(client, secret_registry.add(issuer.token())).status_code == 200
    fetched = issuer.requests
    for _ in range(20):
        assert me(client, issuer.token(kid=f"forged-{uuid.uuid4()}")).status_code == 401
    assert issuer.requests - fetched <= 1


def test_cached_keys_keep_working_while_the_issuer_is_down(
    issuer: Issuer, client: TestClient, secret_registry: SecretRegistry
) -> None:
    assert me(client, secret_registry.add(issuer.token())).status_code == 200
    issuer.stop()
    fresh = secret_registry.add(issuer.token(sub="user_02", email="two@example.com"))
    assert me(client, fresh).status_code == 200


def test_a_subjects_concurrent_first_requests_make_one_user_and_all_succeed(
    issuer: Issuer, client: TestClient, secret_registry: SecretRegistry
) -> None:
    # Eight first requests of one new subject (and its new organization) at once:
    # each creates the user, organization and links; the database decides who
    # wins, and the others find what the winner made.
    tokens = [
        secret_registry.add(issuer.token(sub="user_RACE", org_id="org_RACE")) for _ in range(8)
    ]
    start = threading.Barrier(len(tokens))
    statuses: list[int] = []

    def first_request(token: str) -> None:
        start.wait()
        statuses.append(me(client, token).status_code)

    with client:
        threads = [threading.Thread(target=first_request, args=(t,)) for t in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        users = {me(client, t).json()["data"]["user"]["id"] for t in tokens}
    assert statuses == [200] * len(tokens)
    assert len(users) == 1
