"""``POST /v1/auth/verify``: a service of the platform checks its callers' credentials."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants, tampered

PASSWORD = "correct horse battery staple"


@pytest.fixture
def service(tenants: Tenants) -> Member:
    """A service account of the platform's own organization, holding ``auth:verify``."""
    return tenants.member("platform", "tools@platform.example", "member", scopes=["auth:verify"])


def verify(service: Member, credential: str, **extra: Any) -> httpx.Response:
    return service.post("/v1/auth/verify", json={"credential": credential, **extra})


def without_request_id(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body["error"].pop("requestId")
    return body


def test_a_good_key_is_answered_as_it_would_answer_get_me(
    service: Member, admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, name="tools", scopes=["tool:*", "sandbox:read"])
    verified = verify(service, key["key"])
    assert verified.status_code == 200
    assert verified.headers["cache-control"] == "no-store"
    me = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]}).json()["data"]
    assert verified.json()["data"] == me
    data = verified.json()["data"]
    assert data["organization"]["id"] == admin.org_id
    assert data["user"] == {
        "id": admin.user_id,
        "email": "ada@example.com",
        "displayName": None,
        "role": "admin",
    }
    assert data["credential"]["type"] == "api_key"
    assert data["credential"]["id"] == key["id"]
    assert data["effectiveScopes"] == ["sandbox:read", "tool:*"]
    assert verified.json()["meta"]["requestId"].startswith("req_")


def test_a_session_access_token_is_verified_too(tenants: Tenants, service: Member) -> None:
    tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)
    login = service.http.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()["data"]
    tenants.registry.add(login["accessToken"])
    tenants.registry.add(login["refreshToken"])
    verified = verify(service, login["accessToken"], requiredScopes=["tool:*"])
    assert verified.status_code == 200
    assert verified.json()["data"]["credential"]["type"] == "session"
    assert verified.json()["data"]["credential"]["id"] == login["sessionId"]


def test_every_bad_credential_gets_the_one_401_marked_as_the_credentials(
    service: Member, admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    revoked = admin.create_key(secret_registry, name="gone")
    assert verify(service, revoked["key"]).status_code == 200  # now cached
    admin.delete(f"/v1/api-keys/{revoked['id']}")
    refusals = [
        verify(service, credential)
        for credential in (
            revoked["key"],
            tampered(admin.key),
            "rt_live_" + "A" * 38,
            "not a credential",
            "eyJhbGciOiJub25lIn0.e30.",
            "rt_live_\u00e9",
        )
    ]
    assert {r.status_code for r in refusals} == {401}
    assert all(r.headers["x-runtools-refused"] == "credential" for r in refusals)
    assert len({str(without_request_id(r)) for r in refusals}) == 1
    assert without_request_id(refusals[0]) == {
        "error": {"code": "unauthorized", "message": "Invalid or missing authentication"}
    }
    runtime.flush()
    failed = admin.get("/v1/audit-logs", params={"action": "auth.failed"}).json()["data"]
    assert [e["reason"] for e in failed if e["targetId"] == revoked["id"]] == ["revoked"]


def test_a_scope_the_credential_lacks_is_a_403_naming_it_and_audited_in_its_org(
    service: Member, admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    reader = admin.create_key(secret_registry, scopes=["sandbox:read"])
    refused = verify(service, reader["key"], requiredScopes=["sandbox:read", "tool:*"])
    assert refused.status_code == 403
    assert refused.headers["x-runtools-refused"] == "credential"
    assert refused.json()["error"]["code"] == "forbidden"
    assert refused.json()["error"]["message"] == "This call requires scope tool:*"
    ok = verify(service, reader["key"], requiredScopes=["sandbox:read"])
    assert ok.status_code == 200
    runtime.flush()
    denied = admin.get("/v1/audit-logs", params={"action": "authz.denied"}).json()["data"]
    assert len(denied) == 1
    assert denied[0]["actorId"] == reader["id"]
    assert denied[0]["reason"] == "requires scope tool:*"
    assert denied[0]["details"] == {"route": "/v1/auth/verify", "checkedBy": service.key_id}


def test_a_members_credential_is_capped_by_their_role(
    service: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    refused = verify(service, member.key, requiredScopes=["org:members"])
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "This call requires scope org:members"


def test_only_a_service_credential_may_verify_and_star_does_not_make_one(
    admin: Member, service: Member
) -> None:
    # The admin's `*` key: everything a person can do, but not checking credentials.
    refused = verify(admin, service.key)
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "This call requires scope auth:verify"
    assert "x-runtools-refused" not in refused.headers
    unauthenticated = admin.http.post("/v1/auth/verify", json={"credential": admin.key})
    assert unauthenticated.status_code == 401
    assert "x-runtools-refused" not in unauthenticated.headers


def test_no_credential_can_mint_a_service_credential_through_the_api(admin: Member) -> None:
    minted = admin.post("/v1/api-keys", json={"name": "svc", "scopes": ["auth:verify"]})
    assert minted.status_code == 403
    assert "auth:verify" in minted.json()["error"]["message"]
    widened = admin.patch(f"/v1/api-keys/{admin.key_id}", json={"scopes": ["*", "auth:verify"]})
    assert widened.status_code == 403


def test_unknown_required_scopes_and_bad_bodies_are_400(service: Member, admin: Member) -> None:
    unknown = verify(service, admin.key, requiredScopes=["tool:everything"])
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_request"
    assert "tool:everything" in unknown.json()["error"]["message"]
    for body in ({}, {"credential": ""}, {"credential": 7}, {"credential": "x" * 5000}):
        response = service.post("/v1/auth/verify", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"


def test_the_service_credential_is_rate_limited(
    tenants: Tenants, admin: Member, secret_registry: SecretRegistry
) -> None:
    platform_admin = tenants.member("platform", "root@platform.example", "admin")
    service = tenants.member("platform", "svc@platform.example", "member", scopes=["auth:verify"])
    limited = platform_admin.patch(f"/v1/api-keys/{service.key_id}", json={"rateLimit": 2})
    assert limited.status_code == 200, limited.text
    answers = [verify(service, admin.key).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    # The checks were counted on the service's meter, not on the checked key's.
    first_own_call = admin.get("/v1/me").headers
    assert (
        int(first_own_call["x-ratelimit-remaining"]) == int(first_own_call["x-ratelimit-limit"]) - 1
    )


# -- /v1/auth/check: a reverse proxy's subrequest -----------------------------------


def check(service: Member, headers: dict[str, str], path: str = "/v1/auth/check") -> httpx.Response:
    response: httpx.Response = service.http.get(
        path, headers={"X-Runtools-Service-Key": service.key, **headers}
    )
    return response


def test_the_check_names_the_callers_credential_in_headers(
    service: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    key = member.create_key(secret_registry, scopes=["tool:*", "sandbox:read"])
    for headers in ({"X-API-Key": key["key"]}, {"Authorization": f"Bearer {key['key']}"}):
        allowed = check(service, headers)
        assert allowed.status_code == 200
        assert allowed.headers["x-runtools-org-id"] == member.org_id
        assert allowed.headers["x-runtools-user-id"] == member.user_id
        assert allowed.headers["x-runtools-scopes"] == "sandbox:read tool:*"
        assert allowed.headers["x-runtools-role"] == "member"
        assert allowed.headers["x-runtools-credential-type"] == "api_key"
        assert allowed.headers["x-runtools-credential-id"] == key["id"]
        assert allowed.json()["data"]["credential"]["id"] == key["id"]


def test_the_check_refuses_a_key_a_browser_sent_unless_the_key_allows_browsers(
    service: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    server_side = member.create_key(secret_registry)
    widget = member.create_key(secret_registry, allowBrowser=True)
    browser = {"Origin": "https://tools.example.com"}
    for _ in range(2):  # filling the cache, then from it
        refused = check(service, {"X-API-Key": server_side["key"], **browser})
        assert refused.status_code == 403
        assert refused.headers["x-runtools-refused"] == "credential"
        assert "allowBrowser" in refused.json()["error"]["message"]
        assert check(service, {"X-API-Key": widget["key"], **browser}).status_code == 200
    assert check(service, {"X-API-Key": server_side["key"]}).status_code == 200
    # The service's own key is judged by its own header alone, whatever the browser sent.
    assert verify(service, server_side["key"], requiredScopes=[]).status_code == 200


def test_the_check_answers_any_method_and_any_path_below_it(service: Member, admin: Member) -> None:
    headers = {"X-Runtools-Service-Key": service.key, "X-API-Key": admin.key}
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        for path in ("/v1/auth/check", "/v1/auth/check/tools/run/42"):
            response = service.http.request(method, path, headers=headers)
            assert response.status_code == 200, (method, path)
            assert response.headers["x-runtools-org-id"] == admin.org_id


def test_the_check_refuses_as_the_api_would(
    service: Member, admin: Member, member: Member, runtime: Runtime
) -> None:
    missing = check(service, {})
    bad = check(service, {"X-API-Key": tampered(admin.key)})
    for refused in (missing, bad):
        assert refused.status_code == 401
        assert refused.headers["x-runtools-refused"] == "credential"
        assert "x-runtools-org-id" not in refused.headers
    assert without_request_id(missing) == without_request_id(bad)
    lacking = check(
        service, {"X-API-Key": member.key, "X-Runtools-Required-Scopes": "tool:*, org:members"}
    )
    assert lacking.status_code == 403
    assert lacking.json()["error"]["message"] == "This call requires scope org:members"
    assert (
        check(
            service, {"X-API-Key": admin.key, "X-Runtools-Required-Scopes": "tool:*,org:members"}
        ).status_code
        == 200
    )
    unknown = check(service, {"X-API-Key": admin.key, "X-Runtools-Required-Scopes": "tool:all"})
    assert unknown.status_code == 400


def test_the_proxy_needs_a_service_key_of_its_own_in_its_header(
    service: Member, admin: Member
) -> None:
    # The caller's credential in the proxy's header is not the proxy's credential.
    no_service = admin.http.get("/v1/auth/check", headers={"X-API-Key": admin.key})
    assert no_service.status_code == 401
    assert "x-runtools-refused" not in no_service.headers
    # A person's key is no service key, even an admin's `*` one.
    person = admin.http.get(
        "/v1/auth/check", headers={"X-Runtools-Service-Key": admin.key, "X-API-Key": admin.key}
    )
    assert person.status_code == 403
    assert person.json()["error"]["message"] == "This call requires scope auth:verify"
    # The service key's header takes API keys only, once.
    twice = admin.http.get(
        "/v1/auth/check",
        headers=[
            ("X-Runtools-Service-Key", service.key),
            ("X-Runtools-Service-Key", service.key),
            ("X-API-Key", admin.key),
        ],
    )
    assert twice.status_code == 400
