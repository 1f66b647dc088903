"""Forged and misused tokens are refused, all with the same 401."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Tenants

PASSWORD = "correct horse battery staple"


@pytest.fixture
def signed_in(
    tenants: Tenants, client: TestClient, secret_registry: SecretRegistry
) -> dict[str, Any]:
    tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)
    response = client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    tokens: dict[str, Any] = response.json()["data"]
    secret_registry.add(tokens["accessToken"])
    secret_registry.add(tokens["refreshToken"])
    return tokens


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")

    def decode(part: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return value

    return decode(header), decode(payload), signature


def _encode(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")


def _resign(claims: dict[str, Any], header: dict[str, Any]) -> str:
    # Our own Ed25519 key, not the service's: a valid-looking but forged signature.
    return jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]}
    )


FORGERIES: dict[str, Callable[[dict[str, Any], dict[str, Any], str, str], str]] = {
    "alg none": lambda h, c, s, t: f"{_encode({'alg': 'none', 'typ': 'JWT'})}.{_encode(c)}.",
    "tampered payload": lambda h, c, s, t: (
        f"{_encode(h)}.{_encode({**c, 'role': 'admin', 'sub': 'user_x'})}.{s}"
    ),
    "foreign key": lambda h, c, s, t: _resign(c, h),
    "unknown kid": lambda h, c, s, t: _resign(c, {**h, "kid": "sk_unknown"}),
    "expired": lambda h, c, s, t: _resign({**c, "exp": 1}, h),
    "truncated": lambda h, c, s, t: t[:-10],
    "not a jwt": lambda h, c, s, t: "abc.def.ghi",
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_access_tokens_are_refused(
    forgery: str, signed_in: dict[str, Any], client: TestClient
) -> None:
    token = signed_in["accessToken"]
    header, claims, signature = _segments(token)
    forged = FORGERIES[forgery](header, claims, signature, token)
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid or missing authentication"


def test_hs256_signed_with_the_public_key_is_refused(
    signed_in: dict[str, Any], client: TestClient
) -> None:
    jwk = client.get("/.well-known/jwks.json").json()["keys"][0]
    _, claims, _ = _segments(signed_in["accessToken"])
    public_bytes = base64.urlsafe_b64decode(jwk["x"] + "==")
    header = _encode({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]})
    body = _encode(claims)
    import hashlib
    import hmac

    mac = hmac.new(public_bytes, f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_wrong_issuer_audience_and_future_tokens_are_refused(
    signed_in: dict[str, Any], client: TestClient, runtime: Runtime
) -> None:
    _, claims, _ = _segments(signed_in["accessToken"])
    keyring = runtime.keyring
    now = int(runtime.clock.now().timestamp())
    for changed in (
        {"iss": "https://evil.example"},
        {"aud": "another-api"},
        {"nbf": now + 3600, "iat": now + 3600},
    ):
        # Signed with the service's real key: only the claims are wrong.
        token = keyring.sign({**claims, **changed})
        response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, changed


def test_the_genuine_token_verifies_with_the_published_jwks(
    signed_in: dict[str, Any], client: TestClient
) -> None:
    keys = client.get("/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(keys).keys[0]
    claims = jwt.decode(
        signed_in["accessToken"],
        key,
        algorithms=["EdDSA"],
        audience="runtools-api",
        options={"verify_exp": False},
    )
    assert set(claims) >= {"iss", "aud", "sub", "org", "role", "sid", "iat", "exp", "jti"}
    assert claims["sid"] == signed_in["sessionId"]


def test_a_refresh_token_is_not_an_access_token_and_vice_versa(
    signed_in: dict[str, Any], client: TestClient
) -> None:
    as_access = client.get(
        "/v1/me", headers={"Authorization": f"Bearer {signed_in['refreshToken']}"}
    )
    assert as_access.status_code == 401
    as_refresh = client.post("/v1/auth/refresh", json={"refreshToken": signed_in["accessToken"]})
    assert as_refresh.status_code == 401
    # Neither misuse harmed the genuine pair.
    assert (
        client.get(
            "/v1/me", headers={"Authorization": f"Bearer {signed_in['accessToken']}"}
        ).status_code
        == 200
    )


def test_signing_key_rotation_keeps_old_tokens_valid(
    signed_in: dict[str, Any], client: TestClient, runtime: Runtime
) -> None:
    old_kid = _segments(signed_in["accessToken"])[0]["kid"]
    new_kid = runtime.keyring.rotate()
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert kids == {old_kid, new_kid}
    runtime.authenticator._cache.clear()
    assert (
        client.get(
            "/v1/me", headers={"Authorization": f"Bearer {signed_in['accessToken']}"}
        ).status_code
        == 200
    )
    refreshed = client.post("/v1/auth/refresh", json={"refreshToken": signed_in["refreshToken"]})
    token = refreshed.json()["data"]["accessToken"]
    assert _segments(token)[0]["kid"] == new_kid
