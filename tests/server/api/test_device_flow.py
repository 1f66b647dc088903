"""The OAuth device authorization grant (RFC 8628), as a CLI and a person use it."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from runtools.server.domain.clock import FrozenClock
from support.live_server import LiveServer, runtools
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def sign_in(
    http: httpx.Client, registry: SecretRegistry, email: str = "ada@example.com", **extra: Any
) -> str:
    response = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD, **extra})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    registry.add(data["refreshToken"])
    token: str = registry.add(data["accessToken"])
    return token


def start(
    http: httpx.Client, registry: SecretRegistry, client_id: str = "runtools-cli"
) -> dict[str, Any]:
    response = http.post("/v1/auth/device/code", data={"client_id": client_id})
    assert response.status_code == 200, response.text
    grant: dict[str, Any] = response.json()
    registry.add(grant["device_code"])
    return grant


def poll(
    http: httpx.Client, grant: dict[str, Any], client_id: str = "runtools-cli"
) -> httpx.Response:
    return http.post(
        "/v1/auth/token",
        data={"grant_type": GRANT, "client_id": client_id, "device_code": grant["device_code"]},
    )


@pytest.fixture
def ada(tenants: Tenants) -> Member:
    return tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)


def test_the_whole_flow_over_http(
    live_server: LiveServer, server_env: dict[str, str], secret_registry: SecretRegistry
) -> None:
    runtools("admin", "create-org", "acme", env=server_env)
    runtools(
        "admin",
        "create-user",
        "ada@example.com",
        "--org",
        "acme",
        "--role",
        "admin",
        "--password-stdin",
        env=server_env,
        stdin=PASSWORD,
    )
    live_server.env["RUNTOOLS_DEVICE_POLL_INTERVAL_SECONDS"] = "1"
    live_server.start()
    with httpx.Client(base_url=live_server.url) as http:
        grant = start(http, secret_registry)
        assert re.fullmatch(
            r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", grant["user_code"]
        )
        assert len(grant["device_code"]) >= 22  # at least 128 bits
        assert grant["expires_in"] == 300
        assert grant["interval"] == 1
        assert grant["verification_uri"] == f"{live_server.url}/device"
        assert grant["verification_uri_complete"].endswith(f"?user_code={grant['user_code']}")

        pending = poll(http, grant)
        assert pending.status_code == 400
        assert pending.json() == {
            "error": "authorization_pending",
            "error_description": "Waiting for the user to approve",
        }
        assert pending.headers["cache-control"] == "no-store"
        too_fast = poll(http, grant)
        assert too_fast.json()["error"] == "slow_down"

        token = sign_in(http, secret_registry)
        typed = grant["user_code"].replace("-", "").lower()
        approved = http.post(
            "/v1/auth/device/verify",
            headers={"Authorization": f"Bearer {token}"},
            json={"userCode": typed, "action": "approve"},
        )
        assert approved.status_code == 200
        assert approved.json()["data"]["clientId"] == "runtools-cli"

        time.sleep(6.2)  # the interval grew by 5 seconds after slow_down
        issued = poll(http, grant)
        assert issued.status_code == 200, issued.text
        tokens = issued.json()
        secret_registry.add(tokens["access_token"])
        secret_registry.add(tokens["refresh_token"])
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 300
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.json()["data"]["user"]["email"] == "ada@example.com"
        assert me.json()["data"]["credential"]["name"] == "runtools-cli"

        time.sleep(1.1)
        again = poll(http, grant)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"

        refreshed = http.post(
            "/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert refreshed.status_code == 200
        secret_registry.add(refreshed.json()["refresh_token"])
        secret_registry.add(refreshed.json()["access_token"])

    live_server.stop()
    log = live_server.log_path.read_text()
    assert '"route": "/v1/auth/token"' in log
    for secret in (
        PASSWORD,
        grant["device_code"],
        token,
        tokens["access_token"],
        tokens["refresh_token"],
        grant["user_code"],
    ):
        assert secret not in log


def test_denial(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    grant = start(client, secret_registry)
    token = sign_in(client, secret_registry)
    denied = client.post(
        "/v1/auth/device/verify",
        headers={"Authorization": f"Bearer {token}"},
        json={"userCode": grant["user_code"], "action": "deny"},
    )
    assert denied.status_code == 200
    assert denied.json()["data"]["status"] == "denied"
    response = poll(client, grant)
    assert response.json()["error"] == "access_denied"


def test_expiry(
    ada: Member, client: TestClient, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    grant = start(client, secret_registry)
    clock.advance(timedelta(seconds=301))
    assert poll(client, grant).json()["error"] == "expired_token"
    token = sign_in(client, secret_registry)
    late = client.post(
        "/v1/auth/device/verify",
        headers={"Authorization": f"Bearer {token}"},
        json={"userCode": grant["user_code"], "action": "approve"},
    )
    assert late.status_code == 404


def test_approval_binds_to_the_approvers_current_org(
    ada: Member,
    tenants: Tenants,
    client: TestClient,
    secret_registry: SecretRegistry,
    clock: FrozenClock,
) -> None:
    tenants.member("globex", "ada@example.com", "member")
    grant = start(client, secret_registry)
    token = sign_in(client, secret_registry, org="globex")
    client.post(
        "/v1/auth/device/verify",
        headers={"Authorization": f"Bearer {token}"},
        json={"userCode": grant["user_code"], "action": "approve"},
    )
    tokens = poll(client, grant).json()
    secret_registry.add(tokens["access_token"])
    secret_registry.add(tokens["refresh_token"])
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["data"]["organization"]["name"] == "globex"
    assert me.json()["data"]["user"]["role"] == "member"


def test_an_api_key_cannot_approve(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    grant = start(client, secret_registry)
    response = ada.post(
        "/v1/auth/device/verify", json={"userCode": grant["user_code"], "action": "approve"}
    )
    assert response.status_code == 403
    assert poll(client, grant).json()["error"] == "authorization_pending"


def test_guessing_user_codes_is_throttled(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    grant = start(client, secret_registry)
    token = sign_in(client, secret_registry)
    headers = {"Authorization": f"Bearer {token}"}
    for guess in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF", "GGGG-GGGG"]:
        wrong = client.post(
            "/v1/auth/device/verify", headers=headers, json={"userCode": guess, "action": "approve"}
        )
        assert wrong.status_code == 404
    right = client.post(
        "/v1/auth/device/verify",
        headers=headers,
        json={"userCode": grant["user_code"], "action": "approve"},
    )
    assert right.status_code == 429
    assert int(right.headers["retry-after"]) > 0


def test_oauth_errors_for_bad_requests(client: TestClient, secret_registry: SecretRegistry) -> None:
    assert client.post("/v1/auth/device/code", data={}).json()["error"] == "invalid_request"
    assert client.post("/v1/auth/token", data={}).json()["error"] == "invalid_request"
    unsupported = client.post("/v1/auth/token", data={"grant_type": "password"})
    assert unsupported.json()["error"] == "unsupported_grant_type"
    unknown = client.post(
        "/v1/auth/token", data={"grant_type": GRANT, "client_id": "x", "device_code": "nope"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    grant = start(client, secret_registry, client_id="one-client")
    other_client = poll(client, grant, client_id="another-client")
    assert other_client.json()["error"] == "invalid_grant"


def _form_token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_the_browser_pages_sign_in_and_approve_with_csrf(
    ada: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    grant = start(client, secret_registry)
    to_login = client.get(f"/device?user_code={grant['user_code']}", follow_redirects=False)
    assert to_login.status_code == 303
    assert to_login.headers["location"].startswith("/login?next=")

    login_page = client.get(to_login.headers["location"])
    csrf = _form_token(login_page.text)
    assert "httponly" in login_page.headers["set-cookie"].lower()
    assert "samesite=strict" in login_page.headers["set-cookie"].lower()

    forged = client.post(
        "/login",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "csrf": "forged",
            "next": "/device",
        },
        follow_redirects=False,
    )
    assert forged.status_code == 403

    signed_in = client.post(
        "/login",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "csrf": csrf,
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/device"  # never off-site
    cookies = signed_in.headers.get_list("set-cookie")
    # The session's signed reference and a short-lived access token; never a refresh token.
    assert not any(c.startswith("rt_refresh=") for c in cookies)
    for name in ("rt_access", "rt_session"):
        cookie = next(c for c in cookies if c.startswith(name + "="))
        secret_registry.add(cookie.split(";")[0].split("=", 1)[1])
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert "secure" not in cookie.lower()  # plain HTTP here; Secure behind HTTPS

    confirm = client.post("/device", data={"user_code": grant["user_code"], "csrf": csrf})
    assert confirm.status_code == 200
    assert "runtools-cli" in confirm.text
    assert "ada@example.com" in confirm.text
    no_csrf = client.post(
        "/device/decision", data={"user_code": grant["user_code"], "action": "approve", "csrf": "x"}
    )
    assert no_csrf.status_code == 403
    assert poll(client, grant).json()["error"] == "authorization_pending"
    decided = client.post(
        "/device/decision",
        data={"user_code": grant["user_code"], "action": "approve", "csrf": csrf},
    )
    assert decided.status_code == 200
    assert "approved" in decided.text.lower()
    client.cookies.clear()
    tokens = poll(client, grant)
    assert tokens.status_code == 400  # polled too soon after the last poll
    assert tokens.json()["error"] == "slow_down"


def test_malformed_oauth_requests_get_oauth_errors(client: TestClient) -> None:
    response = client.post("/v1/auth/token", data={"grant_type": "x" * 600})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()) == {"error", "error_description"}


def test_a_throttled_browser_sign_in_says_when_to_retry(ada: Member, client: TestClient) -> None:
    csrf = _form_token(client.get("/login").text)
    form = {"email": "ada@example.com", "password": "wrong", "csrf": csrf, "next": "/device"}
    for _ in range(5):
        assert client.post("/login", data=form).status_code == 401
    throttled = client.post("/login", data=form)
    assert throttled.status_code == 429
    assert "text/html" in throttled.headers["content-type"]
    assert int(throttled.headers["retry-after"]) > 60
