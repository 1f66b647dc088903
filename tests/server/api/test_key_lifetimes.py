"""A key made or rotated by a key ends no later than its maker, and a test key makes test keys.

A signed-in person is not bound by this: a session may make keys of any
lifetime the service allows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from runtools.server.store.models import ApiKey
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"


def _key_count(runtime: Runtime) -> int:
    with runtime.database.session() as session:
        return session.scalar(select(func.count()).select_from(ApiKey)) or 0


def _as_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _expiry(data: dict[str, Any]) -> datetime | None:
    value = data["expiresAt"]
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@pytest.fixture
def hour_key(admin: Member, secret_registry: SecretRegistry) -> dict[str, Any]:
    """An admin's ``*`` key that expires in one hour."""
    return admin.create_key(secret_registry, name="short", expiresIn="1h")


def test_a_key_made_by_a_short_lived_key_ends_with_it_when_no_expiry_is_asked(
    admin: Member, hour_key: dict[str, Any], secret_registry: SecretRegistry
) -> None:
    made = admin.http.post("/v1/api-keys", headers=_as_key(hour_key["key"]), json={"name": "child"})
    assert made.status_code == 201, made.text
    secret_registry.add(made.json()["data"]["key"])
    assert _expiry(made.json()["data"]) == _expiry(hour_key)


@pytest.mark.parametrize("expires_in", ["2h", "30d", "5y"])
def test_a_key_cannot_make_a_key_that_outlives_it(
    admin: Member, hour_key: dict[str, Any], runtime: Runtime, expires_in: str
) -> None:
    before = _key_count(runtime)
    refused = admin.http.post(
        "/v1/api-keys",
        headers=_as_key(hour_key["key"]),
        json={"name": "child", "expiresIn": expires_in},
    )
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert hour_key["expiresAt"][:16] in error["message"]  # says until when
    assert _key_count(runtime) == before  # nothing written


def test_a_key_may_make_a_shorter_lived_key(
    admin: Member, hour_key: dict[str, Any], secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    made = admin.http.post(
        "/v1/api-keys",
        headers=_as_key(hour_key["key"]),
        json={"name": "child", "expiresIn": "1h"},
    )
    assert made.status_code == 201, made.text
    secret_registry.add(made.json()["data"]["key"])
    assert _expiry(made.json()["data"]) == clock.now() + timedelta(hours=1)


def test_a_key_in_its_rotation_grace_cannot_make_a_key_that_never_expires(
    admin: Member, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    old = admin.create_key(secret_registry, name="deploy")
    rotated = admin.post(f"/v1/api-keys/{old['id']}/rotate", json={"gracePeriod": "1h"})
    secret_registry.add(rotated.json()["data"]["key"])
    made = admin.http.post("/v1/api-keys", headers=_as_key(old["key"]), json={"name": "child"})
    assert made.status_code == 201, made.text
    secret_registry.add(made.json()["data"]["key"])
    assert _expiry(made.json()["data"]) == clock.now() + timedelta(hours=1)
    longer = admin.http.post(
        "/v1/api-keys",
        headers=_as_key(old["key"]),
        json={"name": "child", "expiresIn": "1y"},
    )
    assert longer.status_code == 403


def test_a_test_key_makes_only_test_keys(
    tenants: Tenants, admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    test_key = admin.create_key(secret_registry, name="sandboxed", isTest=True)
    before = _key_count(runtime)
    live = admin.http.post(
        "/v1/api-keys", headers=_as_key(test_key["key"]), json={"name": "live child"}
    )
    assert live.status_code == 403
    assert "test key" in live.json()["error"]["message"]
    assert _key_count(runtime) == before
    made = admin.http.post(
        "/v1/api-keys",
        headers=_as_key(test_key["key"]),
        json={"name": "test child", "isTest": True},
    )
    assert made.status_code == 201, made.text
    assert secret_registry.add(made.json()["data"]["key"]).startswith("rt_test_")


def test_rotation_by_a_short_lived_key_cuts_or_refuses_the_successors_life(
    admin: Member, hour_key: dict[str, Any], secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    forever = admin.create_key(secret_registry, name="forever")
    asked = admin.http.post(
        f"/v1/api-keys/{forever['id']}/rotate",
        headers=_as_key(hour_key["key"]),
        json={"expiresIn": "90d"},
    )
    assert asked.status_code == 403
    assert admin.get(f"/v1/api-keys/{forever['id']}").json()["data"]["status"] == "active"
    rotated = admin.http.post(
        f"/v1/api-keys/{forever['id']}/rotate", headers=_as_key(hour_key["key"]), json={}
    )
    assert rotated.status_code == 201, rotated.text
    secret_registry.add(rotated.json()["data"]["key"])
    assert _expiry(rotated.json()["data"]) == _expiry(hour_key)


def test_a_test_key_cannot_rotate_a_live_key_into_a_live_successor(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    test_key = admin.create_key(secret_registry, name="sandboxed", isTest=True)
    live = admin.create_key(secret_registry, name="live")
    refused = admin.http.post(
        f"/v1/api-keys/{live['id']}/rotate", headers=_as_key(test_key["key"]), json={}
    )
    assert refused.status_code == 403
    assert admin.get(f"/v1/api-keys/{live['id']}").json()["data"]["status"] == "active"


def test_patch_cannot_change_a_keys_lifetime_or_kind(
    admin: Member, hour_key: dict[str, Any], secret_registry: SecretRegistry
) -> None:
    child = admin.create_key(secret_registry, name="child", expiresIn="1h")
    for body in ({"expiresIn": "1y"}, {"expiresAt": None}, {"isTest": True}):
        refused = admin.http.patch(
            f"/v1/api-keys/{child['id']}", headers=_as_key(hour_key["key"]), json=body
        )
        assert refused.status_code == 400, body
    assert (
        admin.get(f"/v1/api-keys/{child['id']}").json()["data"]["expiresAt"] == child["expiresAt"]
    )


def test_a_signed_in_person_may_make_keys_of_any_allowed_lifetime(
    tenants: Tenants, secret_registry: SecretRegistry, clock: FrozenClock
) -> None:
    ada = tenants.member("acme", "ada@example.com", "admin", password=PASSWORD)
    signed_in = ada.http.post("/v1/auth/login", json={"email": ada.email, "password": PASSWORD})
    token = secret_registry.add(signed_in.json()["data"]["accessToken"])
    secret_registry.add(signed_in.json()["data"]["refreshToken"])
    bearer = {"Authorization": f"Bearer {token}"}
    for body, expected in (
        ({"name": "long", "expiresIn": "1y"}, clock.now() + timedelta(days=365)),
        ({"name": "never"}, None),
        ({"name": "live"}, None),
    ):
        made = ada.http.post("/v1/api-keys", headers=bearer, json=body)
        assert made.status_code == 201, made.text
        secret_registry.add(made.json()["data"]["key"])
        assert _expiry(made.json()["data"]) == expected
