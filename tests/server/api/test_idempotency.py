"""``Idempotency-Key`` on create routes: a retried create returns the first result."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from runtools.server.domain.clock import FrozenClock
from support.secret_registry import SecretRegistry
from support.tenants import Member


def _create(admin: Member, key: str, **body: Any) -> Any:
    body.setdefault("name", "ci")
    return admin.http.post(
        "/v1/api-keys", json=body, headers={**admin.headers(), "Idempotency-Key": key}
    )


def _names(admin: Member) -> list[str]:
    return [k["name"] for k in admin.get("/v1/api-keys").json()["data"]]


def test_a_retried_create_returns_the_same_key_and_mints_no_second(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = str(uuid.uuid4())
    first = _create(admin, key, scopes=["sandbox:*"])
    assert first.status_code == 201
    secret_registry.add(first.json()["data"]["key"])
    again = _create(admin, key, scopes=["sandbox:*"])
    assert again.status_code == 201
    assert again.json() == first.json()  # same secret, same id, same request id
    # The body names the request that did the work; the header, the retry itself.
    assert again.json()["meta"]["requestId"] == first.headers["X-Request-Id"]
    assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _names(admin) == ["ci", "bootstrap"]


def test_the_same_key_with_a_different_body_is_refused(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = str(uuid.uuid4())
    secret_registry.add(_create(admin, key).json()["data"]["key"])
    other = _create(admin, key, name="other")
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "different request" in error["message"]
    assert error["requestId"].startswith("req_")
    assert _names(admin) == ["ci", "bootstrap"]


def test_keys_are_scoped_to_the_credential(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    key = str(uuid.uuid4())
    mine = _create(admin, key).json()["data"]
    theirs = _create(member, key).json()["data"]
    secret_registry.add(mine["key"])
    secret_registry.add(theirs["key"])
    assert mine["id"] != theirs["id"]
    assert theirs["ownerEmail"] == "bob@example.com"


def test_a_failed_create_is_not_remembered(admin: Member, secret_registry: SecretRegistry) -> None:
    key = str(uuid.uuid4())
    refused = _create(admin, key, scopes=["sandbox:destroy"])
    assert refused.status_code == 400
    # The same key and body again runs again (and is refused again, not replayed).
    again = _create(admin, key, scopes=["sandbox:destroy"])
    assert again.status_code == 400
    assert "Idempotent-Replayed" not in again.headers


def test_a_retried_rotation_returns_the_same_successor(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    created = admin.create_key(secret_registry, name="deploy")
    headers = {**admin.headers(), "Idempotency-Key": "rotate-deploy-2026-01-15"}
    path = f"/v1/api-keys/{created['id']}/rotate"
    first = admin.http.post(path, json={"gracePeriod": "1h"}, headers=headers)
    assert first.status_code == 201
    secret_registry.add(first.json()["data"]["key"])
    again = admin.http.post(path, json={"gracePeriod": "1h"}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    # Without replay the second rotation would be a 409: the key is already rotated.
    fresh = admin.http.post(path, json={"gracePeriod": "1h"}, headers=admin.headers())
    assert fresh.status_code == 409


def test_the_same_key_on_another_route_is_refused(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    created = admin.create_key(secret_registry, name="deploy")
    key = str(uuid.uuid4())
    secret_registry.add(_create(admin, key).json()["data"]["key"])
    rotate = admin.http.post(
        f"/v1/api-keys/{created['id']}/rotate",
        json={},
        headers={**admin.headers(), "Idempotency-Key": key},
    )
    assert rotate.status_code == 422


def test_records_expire_after_a_day(
    admin: Member, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    key = str(uuid.uuid4())
    first = _create(admin, key).json()["data"]
    secret_registry.add(first["key"])
    clock.advance(timedelta(hours=24, seconds=1))
    later = _create(admin, key).json()["data"]
    secret_registry.add(later["key"])
    assert later["id"] != first["id"]


def test_malformed_keys_are_a_validation_error(admin: Member) -> None:
    for bad in [b"has space", b"x" * 256, "ünïcode".encode()]:
        response = admin.http.post(
            "/v1/api-keys",
            json={"name": "x"},
            headers=[*admin.headers().items(), (b"Idempotency-Key", bad)],
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "validation_error"
    assert _names(admin) == ["bootstrap"]
