"""``/v1/organizations/{id}/policy``: admins bound their organization's keys' lifetimes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Member


def policy_url(member: Member) -> str:
    return f"/v1/organizations/{member.org_id}/policy"


def set_policy(admin: Member, **body: Any) -> httpx.Response:
    return admin.patch(policy_url(admin), json=body)


def create(member: Member, registry: SecretRegistry, **body: Any) -> httpx.Response:
    body.setdefault("name", "ci")
    response = member.post("/v1/api-keys", json=body)
    if response.status_code == 201:
        registry.add(response.json()["data"]["key"])
    return response


def test_the_policy_starts_open_and_members_can_read_it(admin: Member, member: Member) -> None:
    shown = member.get(policy_url(member))
    assert shown.status_code == 200
    assert shown.json()["data"] == {
        "orgId": admin.org_id,
        "maxKeyLifetime": None,
        "requireKeyExpiry": False,
        "revokeUnusedAfterDays": None,
    }


def test_a_key_beyond_the_longest_lifetime_is_refused_saying_until_when(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    changed = set_policy(admin, maxKeyLifetime="90d")
    assert changed.status_code == 200
    assert changed.json()["data"]["maxKeyLifetime"] == "90d"
    # The frozen clock is 2026-01-15 12:00 UTC: 90 days on is 2026-04-15 12:00.
    for body in ({"expiresIn": "91d"}, {"expiresIn": "1y"}, {}):
        refused = create(member, secret_registry, **body)
        assert refused.status_code == 403, body
        error = refused.json()["error"]
        assert error["code"] == "forbidden"
        assert "at most 90d, until 2026-04-15T12:00:00Z" in error["message"]
    assert "never to expire" in create(member, secret_registry).json()["error"]["message"]
    made = create(member, secret_registry, expiresIn="90d")
    assert made.status_code == 201
    assert made.json()["data"]["expiresAt"] == "2026-04-15T12:00:00Z"
    assert create(member, secret_registry, expiresIn="30d").status_code == 201
    # Nothing was made by the refusals.
    names = [k["name"] for k in member.get("/v1/api-keys").json()["data"]]
    assert names.count("ci") == 2


def test_rotation_is_held_to_it_too(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    forever = create(member, secret_registry, name="old").json()["data"]
    set_policy(admin, maxKeyLifetime="30d")
    carried = member.post(f"/v1/api-keys/{forever['id']}/rotate", json={})
    assert carried.status_code == 403
    assert "until 2026-02-14T12:00:00Z" in carried.json()["error"]["message"]
    too_long = member.post(f"/v1/api-keys/{forever['id']}/rotate", json={"expiresIn": "60d"})
    assert too_long.status_code == 403
    # The refusals left the old key as it was.
    old = member.get(f"/v1/api-keys/{forever['id']}").json()["data"]
    assert (old["status"], old["rotatedToId"]) == ("active", None)
    rotated = member.post(f"/v1/api-keys/{forever['id']}/rotate", json={"expiresIn": "30d"})
    assert rotated.status_code == 201
    secret_registry.add(rotated.json()["data"]["key"])
    assert rotated.json()["data"]["expiresAt"] == "2026-02-14T12:00:00Z"


def test_required_expiry_refuses_a_key_that_never_ends(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    set_policy(admin, requireKeyExpiry=True)
    refused = create(member, secret_registry)
    assert refused.status_code == 403
    assert "requires every API key to expire" in refused.json()["error"]["message"]
    assert create(member, secret_registry, expiresIn="5y").status_code == 201
    # A honeytoken never authenticates, so it is not held to lifetimes.
    assert create(member, secret_registry, name="bait", isCanary=True).status_code == 201


def test_a_key_made_by_a_key_counts_with_its_inherited_end(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    maker = create(admin, secret_registry, name="maker", expiresIn="10d").json()["data"]
    set_policy(admin, maxKeyLifetime="30d", requireKeyExpiry=True)
    made = admin.http.post(
        "/v1/api-keys", headers={"X-API-Key": maker["key"]}, json={"name": "child"}
    )
    assert made.status_code == 201  # cut to its maker's end, ten days: within the policy
    secret_registry.add(made.json()["data"]["key"])
    assert made.json()["data"]["expiresAt"] == maker["expiresAt"]


def test_only_admins_change_it_and_only_their_own_organizations(
    admin: Member, member: Member, outsider: Member, runtime: Runtime
) -> None:
    refused = set_policy(member, maxKeyLifetime="1d")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "This call requires role admin"
    elsewhere = outsider.patch(policy_url(admin), json={"maxKeyLifetime": "1d"})
    assert elsewhere.status_code == 404
    assert outsider.get(policy_url(admin)).status_code == 404
    assert admin.get(policy_url(admin)).json()["data"]["maxKeyLifetime"] is None


def test_bad_values_are_400s_and_change_nothing(admin: Member) -> None:
    for body in (
        {"maxKeyLifetime": "90m"},
        {"maxKeyLifetime": "6y"},
        {"maxKeyLifetime": 90},
        {"requireKeyExpiry": None},
        {"requireKeyExpiry": "yes please"},
        {"unknown": True},
    ):
        response = set_policy(admin, **body)
        assert response.status_code in {400, 422}, body
        assert set(response.json()["error"]) == {"code", "message", "requestId"}
        assert response.status_code == 400, (body, response.text)
    assert admin.get(policy_url(admin)).json()["data"]["maxKeyLifetime"] is None


def test_clearing_the_limit_and_the_change_is_audited(
    admin: Member, member: Member, runtime: Runtime, secret_registry: SecretRegistry
) -> None:
    set_policy(admin, maxKeyLifetime="7d", requireKeyExpiry=True)
    cleared = set_policy(admin, maxKeyLifetime=None)
    assert cleared.json()["data"] == {
        "orgId": admin.org_id,
        "maxKeyLifetime": None,
        "requireKeyExpiry": True,  # not mentioned: kept
        "revokeUnusedAfterDays": None,
    }
    assert create(member, secret_registry, expiresIn="2y").status_code == 201
    runtime.flush()
    events = admin.get("/v1/audit-logs", params={"action": "org.policy_changed"}).json()["data"]
    unused = {"revokeUnusedAfterDays": None}
    assert [e["details"]["new"] for e in events] == [
        {"maxKeyLifetime": None, "requireKeyExpiry": True, **unused},
        {"maxKeyLifetime": "7d", "requireKeyExpiry": True, **unused},
    ]
    assert events[0]["details"]["old"] == {
        "maxKeyLifetime": "7d",
        "requireKeyExpiry": True,
        **unused,
    }
    assert events[0]["actorId"] == admin.key_id


def test_keys_unused_past_the_policy_are_revoked_and_others_kept(
    admin: Member,
    member: Member,
    outsider: Member,
    secret_registry: SecretRegistry,
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    idle = create(member, secret_registry, name="idle").json()["data"]
    busy = create(member, secret_registry, name="busy").json()["data"]
    theirs = create(outsider, secret_registry, name="theirs").json()["data"]
    refused = set_policy(admin, revokeUnusedAfterDays=0)
    assert refused.status_code == 400
    assert "revokeUnusedAfterDays" in refused.text
    assert set_policy(member, revokeUnusedAfterDays=30).status_code == 403
    shown = set_policy(admin, revokeUnusedAfterDays=30)
    assert shown.status_code == 200
    assert shown.json()["data"]["revokeUnusedAfterDays"] == 30

    clock.advance(timedelta(days=20))
    busy_key = {"X-API-Key": busy["key"]}
    assert admin.http.get("/v1/me", headers=busy_key).status_code == 200
    assert admin.get(policy_url(admin)).status_code == 200  # the admin's own key, used
    runtime.usage.flush()
    assert runtime.api_keys.revoke_unused() == []  # nothing unused for 30 days yet
    clock.advance(timedelta(days=11))
    # idle, and the member's own key: 31 days since last used; busy and the admin's:
    # 11 days; the other organization has no such policy.
    assert sorted(runtime.api_keys.revoke_unused()) == sorted([idle["id"], member.key_id])
    assert runtime.api_keys.revoke_unused() == []  # once only
    gone = admin.get(f"/v1/api-keys/{idle['id']}").json()["data"]
    assert (gone["status"], gone["revokedReason"]) == ("revoked", "unused")
    assert admin.http.get("/v1/me", headers={"X-API-Key": idle["key"]}).status_code == 401
    assert admin.http.get("/v1/me", headers=busy_key).status_code == 200
    assert outsider.get(f"/v1/api-keys/{theirs['id']}").json()["data"]["status"] == "active"
    runtime.flush()
    events = admin.get("/v1/audit-logs", params={"action": "api_key.revoked"}).json()["data"]
    assert sorted((e["targetId"], e["actorType"], e["reason"]) for e in events) == sorted(
        [(idle["id"], "system", "unused"), (member.key_id, "system", "unused")]
    )
    # Null turns it off.
    assert (
        set_policy(admin, revokeUnusedAfterDays=None).json()["data"]["revokeUnusedAfterDays"]
        is None
    )
    clock.advance(timedelta(days=60))
    assert runtime.api_keys.revoke_unused() == []
