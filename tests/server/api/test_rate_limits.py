"""Rate limits as a caller sees them: headers on every counted response, then a 429."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtools.server import operator
from runtools.server.api.guards import PUBLIC_RATE_LIMITED
from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Member

# Windows are epoch minutes of the runtime's clock, frozen in these tests: a test's
# counts never straddle a reset, however long it takes, and nothing waits for one.


def test_every_authenticated_response_carries_the_limit_headers(
    admin: Member, clock: FrozenClock
) -> None:
    first = admin.get("/v1/me")
    second = admin.get("/v1/api-keys")
    assert first.headers["X-RateLimit-Limit"] == "60"  # free plan, live key
    assert int(first.headers["X-RateLimit-Remaining"]) == 59
    assert int(second.headers["X-RateLimit-Remaining"]) == 58
    reset = int(first.headers["X-RateLimit-Reset"])
    assert clock.timestamp() < reset <= clock.timestamp() + 60
    rejected = admin.get("/v1/api-keys", params={"limit": 0})  # a 400 is counted too
    assert rejected.status_code == 400
    assert rejected.headers["X-RateLimit-Remaining"] == "57"


def test_past_the_limit_the_answer_is_429_with_retry_after_in_the_envelope(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    slow = admin.create_key(secret_registry, rateLimit=3)
    headers = {"X-API-Key": slow["key"]}
    statuses = [admin.http.get("/v1/me", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = admin.http.get("/v1/me", headers=headers)
    body = refused.json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["requestId"] == refused.headers["X-Request-Id"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Another key of the same owner has its own budget.
    assert admin.get("/v1/me").status_code == 200


def test_the_window_is_the_runtimes_clock_and_resets_when_it_turns(
    admin: Member, clock: FrozenClock, secret_registry: SecretRegistry
) -> None:
    slow = admin.create_key(secret_registry, rateLimit=1)
    headers = {"X-API-Key": slow["key"]}
    assert admin.http.get("/v1/me", headers=headers).status_code == 200
    refused = admin.http.get("/v1/me", headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == 60  # the clock stands at 12:00:00
    clock.advance(timedelta(seconds=59))
    assert admin.http.get("/v1/me", headers=headers).status_code == 429
    clock.advance(timedelta(seconds=1))
    again = admin.http.get("/v1/me", headers=headers)
    assert again.status_code == 200
    assert again.headers["X-RateLimit-Reset"] == str(int(clock.timestamp()) + 60)


def test_test_keys_get_a_lower_default(admin: Member, secret_registry: SecretRegistry) -> None:
    test_key = admin.create_key(secret_registry, isTest=True)
    response = admin.http.get("/v1/me", headers={"X-API-Key": test_key["key"]})
    assert response.headers["X-RateLimit-Limit"] == "20"


def test_the_plan_sets_the_default_and_caps_a_keys_own_limit(
    admin: Member, runtime: Runtime, secret_registry: SecretRegistry
) -> None:
    operator.set_plan(runtime, admin.org_name, "pro")
    assert admin.get("/v1/me").headers["X-RateLimit-Limit"] == "300"
    too_fast = admin.post("/v1/api-keys", json={"name": "fast", "rateLimit": 301})
    assert too_fast.status_code == 400
    assert "300" in too_fast.json()["error"]["message"]
    key = admin.create_key(secret_registry, rateLimit=300)
    assert key["rateLimit"] == 300
    # Back to a smaller plan: the key's own limit no longer outruns it.
    operator.set_plan(runtime, admin.org_name, "free")
    used = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]})
    assert used.headers["X-RateLimit-Limit"] == "60"


def test_a_test_key_may_be_given_up_to_the_live_limit_never_more(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    test_key = admin.create_key(secret_registry, isTest=True, rateLimit=60)
    used = admin.http.get("/v1/me", headers={"X-API-Key": test_key["key"]})
    assert used.headers["X-RateLimit-Limit"] == "60"
    too_fast = admin.patch(f"/v1/api-keys/{test_key['id']}", json={"rateLimit": 61})
    assert too_fast.status_code == 400


def test_a_malformed_body_is_judged_by_its_credential_first(
    admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    malformed = {"Content-Type": "application/json"}
    slow = admin.create_key(secret_registry, rateLimit=2)
    counted = admin.http.post(
        "/v1/api-keys", headers={**malformed, "X-API-Key": slow["key"]}, content=b"{"
    )
    assert counted.status_code == 400
    assert counted.json()["error"]["code"] == "validation_error"
    assert counted.headers["X-RateLimit-Remaining"] == "1"
    admin.http.get("/v1/me", headers={"X-API-Key": slow["key"]})
    exhausted = admin.http.post(
        "/v1/api-keys", headers={**malformed, "X-API-Key": slow["key"]}, content=b"{"
    )
    assert exhausted.status_code == 429
    admin.delete(f"/v1/api-keys/{slow['id']}")
    revoked = admin.http.post(
        "/v1/api-keys", headers={**malformed, "X-API-Key": slow["key"]}, content=b"\xff"
    )
    assert revoked.status_code == 401
    anonymous = admin.http.post("/v1/api-keys", headers=malformed, content=b"{")
    assert anonymous.status_code == 401
    runtime.flush()
    failures = admin.get("/v1/audit-logs", params={"action": "auth.failed"}).json()["data"]
    assert [(e["reason"], e["targetId"]) for e in failures] == [("revoked", slow["id"])]


def test_a_path_no_route_serves_is_judged_by_its_credential_first(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    found = admin.get("/v1/no-such-thing")
    assert found.status_code == 404
    assert found.headers["X-RateLimit-Remaining"] == "59"
    # A method the path does not serve is a 405 whoever asks (as the OpenAPI contract says).
    assert admin.http.put("/v1/me", headers={"X-API-Key": "rt_live_nope"}).status_code == 405
    bad = admin.http.get("/v1/no-such-thing", headers={"X-API-Key": "rt_live_nope"})
    assert bad.status_code == 401
    assert admin.http.get("/v1/no-such-thing").status_code == 404  # no credential: no judgement


def test_rate_limit_is_shown_and_changed_through_the_api(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry)
    assert key["rateLimit"] is None
    patched = admin.patch(f"/v1/api-keys/{key['id']}", json={"rateLimit": 5})
    assert patched.json()["data"]["rateLimit"] == 5
    assert admin.get(f"/v1/api-keys/{key['id']}").json()["data"]["rateLimit"] == 5
    # Verified before the change; the change reaches the cache at once.
    used = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]})
    assert used.headers["X-RateLimit-Limit"] == "5"
    admin.patch(f"/v1/api-keys/{key['id']}", json={"rateLimit": None})
    used = admin.http.get("/v1/me", headers={"X-API-Key": key["key"]})
    assert used.headers["X-RateLimit-Limit"] == "60"


def test_a_bad_rate_limit_is_a_clear_400(admin: Member) -> None:
    for bad in (0, -1, "fast", 10**9):
        response = admin.post("/v1/api-keys", json={"name": "k", "rateLimit": bad})
        assert response.status_code == 400, bad
        assert "rateLimit" in response.json()["error"]["message"]


def test_rotation_keeps_the_keys_rate_limit(admin: Member, secret_registry: SecretRegistry) -> None:
    key = admin.create_key(secret_registry, rateLimit=7)
    rotated = admin.post(f"/v1/api-keys/{key['id']}/rotate", json={}).json()["data"]
    secret_registry.add(rotated["key"])
    assert rotated["rateLimit"] == 7


def test_rate_limited_public_routes_count_per_client_address(app: FastAPI) -> None:
    async def sign_in(_: Annotated[None, PUBLIC_RATE_LIMITED]) -> dict[str, str]:
        return {"data": "ok"}

    app.add_api_route("/v1/sign-in-like", sign_in, methods=["POST"])
    client = TestClient(app, raise_server_exceptions=False)
    statuses = [client.post("/v1/sign-in-like").status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60
    assert statuses[60] == 429
    # Health checks are never limited: load balancers probe them all day.
    assert all(client.get("/healthz").status_code == 200 for _ in range(70))
