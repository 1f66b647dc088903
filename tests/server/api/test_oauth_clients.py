"""A standard OAuth client (Authlib) signs in with the device grant and refreshes, over HTTP.

Against the real app on a socket: server metadata (RFC 8414) tells the
client where to go; client_id may travel in the form or in HTTP Basic
with an empty password (RFC 6749 §2.3.1); a client secret is refused with
an error that says the clients are public.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from runtools.server import operator
from runtools.server.settings import Settings
from support.secret_registry import SecretRegistry
from support.served_app import ServedApp, serve

PASSWORD = "correct horse battery staple"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT_ID = "runtools-cli"


@pytest.fixture
def served(
    tmp_path: Path, database_url: str | None, secret_registry: SecretRegistry
) -> Iterator[ServedApp]:
    settings = Settings(home=tmp_path / "home", database_url=database_url, _env_file=None)
    with serve(settings, secret_registry) as app:
        operator.create_org(app.runtime, "acme")
        operator.create_user(
            app.runtime, "ada@example.com", org_name="acme", role="admin",
            password=PASSWORD, display_name=None,
        )  # fmt: skip
        yield app


def metadata(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/.well-known/oauth-authorization-server")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def approve(url: str, user_code: str, registry: SecretRegistry) -> None:
    """Ada signs in in a browser and approves the code."""
    login = httpx.post(
        f"{url}/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    data = login.json()["data"]
    registry.add(data["refreshToken"])
    token = registry.add(data["accessToken"])
    approved = httpx.post(
        f"{url}/v1/auth/device/verify",
        headers={"Authorization": f"Bearer {token}"},
        json={"userCode": user_code, "action": "approve"},
    )
    assert approved.status_code == 200, approved.text


def start(client: OAuth2Client, server: dict[str, Any], registry: SecretRegistry) -> dict[str, Any]:
    """The device authorization request, authenticated as the client authenticates at /token."""
    body = {} if client.token_endpoint_auth_method != "none" else {"client_id": CLIENT_ID}
    response = client.post(
        server["device_authorization_endpoint"],
        data=body,
        auth=client.client_auth(client.token_endpoint_auth_method),
    )
    assert response.status_code == 200, response.text
    grant: dict[str, Any] = response.json()
    registry.add(grant["device_code"])
    return grant


def test_the_metadata_names_every_endpoint_and_both_paths_agree(served: ServedApp) -> None:
    document = metadata(served.url)
    assert document["issuer"] == served.url
    assert document["device_authorization_endpoint"] == f"{served.url}/v1/auth/device/code"
    assert document["token_endpoint"] == f"{served.url}/v1/auth/token"
    assert document["jwks_uri"] == f"{served.url}/.well-known/jwks.json"
    assert document["grant_types_supported"] == [GRANT, "refresh_token"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    assert httpx.get(f"{served.url}/.well-known/openid-configuration").json() == document
    assert httpx.get(document["jwks_uri"]).json()["keys"]
    # Authlib's RFC 8414 checks, but the authorization endpoint's response types:
    # there is no authorization endpoint (people sign in through the device grant).
    checked = AuthorizationServerMetadata(document)
    for key in checked.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(checked, f"validate_{key}")()


@pytest.mark.parametrize(
    "options",
    [
        {},  # Authlib's default for a client without a secret: client_id in the form
        {"client_secret": "", "token_endpoint_auth_method": "client_secret_basic"},
    ],
    ids=["client-id-in-the-form", "client-id-in-http-basic"],
)
def test_authlib_signs_in_with_the_device_grant_and_refreshes(
    served: ServedApp, secret_registry: SecretRegistry, options: dict[str, str]
) -> None:
    server = metadata(served.url)
    with OAuth2Client(client_id=CLIENT_ID, **options) as client:
        grant = start(client, server, secret_registry)
        with pytest.raises(OAuthError) as pending:
            client.fetch_token(
                server["token_endpoint"], grant_type=GRANT, device_code=grant["device_code"]
            )
        assert pending.value.error == "authorization_pending"

        second = start(client, server, secret_registry)  # a grant not yet polled: no slow_down
        approve(served.url, second["user_code"], secret_registry)
        token = client.fetch_token(
            server["token_endpoint"], grant_type=GRANT, device_code=second["device_code"]
        )
        secret_registry.add(token["access_token"])
        secret_registry.add(token["refresh_token"])
        assert token["token_type"] == "Bearer"
        me = client.get(f"{served.url}/v1/me")  # Authlib sends the access token itself
        assert me.status_code == 200, me.text
        assert me.json()["data"]["user"]["email"] == "ada@example.com"
        assert me.json()["data"]["credential"]["name"] == CLIENT_ID

        refreshed = client.refresh_token(server["token_endpoint"])
        secret_registry.add(refreshed["access_token"])
        secret_registry.add(refreshed["refresh_token"])
        assert refreshed["access_token"] != token["access_token"]
        assert client.get(f"{served.url}/v1/me").status_code == 200


def test_a_client_secret_is_refused_saying_the_clients_are_public(
    served: ServedApp, secret_registry: SecretRegistry
) -> None:
    server = metadata(served.url)
    with OAuth2Client(client_id=CLIENT_ID, client_secret="s3cret") as client:
        assert client.token_endpoint_auth_method == "client_secret_basic"
        refused = client.post(
            server["device_authorization_endpoint"],
            auth=client.client_auth(client.token_endpoint_auth_method),
        )
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"
        assert "public" in refused.json()["error_description"]
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        with pytest.raises(OAuthError) as polled:
            client.fetch_token(server["token_endpoint"], grant_type=GRANT, device_code="x" * 30)
        assert polled.value.error == "invalid_client"
        assert "no secret" in polled.value.description


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "form", "status", "error", "says"),
    [
        ({"Authorization": "Basic !!!"}, {}, 401, "invalid_client", "Malformed"),
        (basic("", ""), {}, 401, "invalid_client", "Malformed"),
        ({"Authorization": "Bearer abc"}, {}, 401, "invalid_client", "HTTP Basic"),
        (basic(CLIENT_ID, ""), {"client_id": "other"}, 400, "invalid_request", "differ"),
    ],
    ids=["not-base64", "no-client-id", "not-basic", "two-different-ids"],
)
def test_bad_client_authentication_says_what_is_wrong(
    served: ServedApp,
    headers: dict[str, str],
    form: dict[str, str],
    status: int,
    error: str,
    says: str,
) -> None:
    for endpoint in ("/v1/auth/device/code", "/v1/auth/token"):
        body = {**form, "grant_type": GRANT, "device_code": "x" * 30}
        response = httpx.post(f"{served.url}{endpoint}", headers=headers, data=body)
        assert response.status_code == status, response.text
        assert response.json()["error"] == error
        assert says in response.json()["error_description"]
        assert response.headers["Cache-Control"] == "no-store"


def test_the_same_client_id_in_basic_and_in_the_form_is_one_client(
    served: ServedApp, secret_registry: SecretRegistry
) -> None:
    response = httpx.post(
        f"{served.url}/v1/auth/device/code",
        headers=basic(CLIENT_ID, ""),
        data={"client_id": CLIENT_ID},
    )
    assert response.status_code == 200, response.text
    secret_registry.add(response.json()["device_code"])
