"""The audit log as an admin reads it."""

from __future__ import annotations

from datetime import timedelta

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Member


def test_key_changes_are_recorded_with_actor_and_target_and_no_secret(
    admin: Member, secret_registry: SecretRegistry
) -> None:
    key = admin.create_key(secret_registry, name="ci")
    admin.patch(f"/v1/api-keys/{key['id']}", json={"name": "ci-2"})
    rotated = admin.post(f"/v1/api-keys/{key['id']}/rotate", json={}).json()["data"]
    secret_registry.add(rotated["key"])
    admin.delete(f"/v1/api-keys/{rotated['id']}")
    events = admin.get("/v1/audit-logs").json()["data"]
    actions = [e["action"] for e in events]
    assert actions[:4] == [
        "api_key.revoked",
        "api_key.rotated",
        "api_key.updated",
        "api_key.created",
    ]
    created = events[3]
    assert created["actorType"] == "api_key"
    assert created["actorId"] == admin.key_id
    assert created["targetId"] == key["id"]
    assert created["orgId"] == admin.org_id
    assert created["requestId"].startswith("req_")
    assert created["details"]["actorUserId"] == admin.user_id
    text = str(events)
    assert key["key"] not in text
    assert rotated["key"] not in text


def test_denied_calls_are_audited(
    admin: Member, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    reader = admin.create_key(secret_registry, scopes=["sandbox:read"])
    admin.http.get("/v1/api-keys", headers={"X-API-Key": reader["key"]})
    runtime.flush()
    denied = admin.get("/v1/audit-logs", params={"action": "authz.denied"}).json()["data"]
    assert len(denied) == 1
    assert denied[0]["actorId"] == reader["id"]
    assert denied[0]["reason"] == "requires scope *"


def test_a_probe_for_another_organizations_object_is_in_the_probers_log_only(
    admin: Member, member: Member, outsider: Member, runtime: Runtime
) -> None:
    probe = outsider.get(f"/v1/api-keys/{admin.key_id}")
    assert probe.status_code == 404
    refused = member.delete(f"/v1/organizations/{admin.org_id}/members/{admin.user_id}")
    assert refused.status_code == 403
    runtime.flush()
    [found] = outsider.get("/v1/audit-logs", params={"action": "authz.not_found"}).json()["data"]
    assert found["actorId"] == outsider.key_id
    assert found["outcome"] == "failure"
    assert found["requestId"] == probe.headers["x-request-id"]
    assert found["details"]["route"] == "/v1/api-keys/{key_id}"
    assert found["details"]["params"] == {"key_id": admin.key_id}
    assert found["details"]["method"] == "GET"
    # The probed organization learns nothing: not even that someone asked.
    assert admin.get("/v1/audit-logs", params={"action": "authz.not_found"}).json()["data"] == []
    # A refusal already audited where it was decided is in the log once.
    denied = admin.get("/v1/audit-logs", params={"action": "authz.denied"}).json()["data"]
    assert [e["requestId"] for e in denied] == [refused.headers["x-request-id"]]


def test_filter_by_time(admin: Member, secret_registry: SecretRegistry, clock: FrozenClock) -> None:
    admin.create_key(secret_registry, name="early")
    clock.advance(timedelta(days=1))
    admin.create_key(secret_registry, name="late")
    since = admin.get("/v1/audit-logs", params={"since": "2026-01-16T00:00:00Z"}).json()["data"]
    assert [e["details"]["name"] for e in since] == ["late"]
    until = admin.get(
        "/v1/audit-logs", params={"until": "2026-01-16T00:00:00Z", "action": "api_key.created"}
    ).json()["data"]
    assert {e["details"]["name"] for e in until} == {"early", "bootstrap"}


def test_filter_by_actor(admin: Member, secret_registry: SecretRegistry) -> None:
    maker = admin.create_key(secret_registry, name="maker")
    made = admin.http.post(
        "/v1/api-keys", headers={"X-API-Key": maker["key"]}, json={"name": "by the maker"}
    )
    secret_registry.add(made.json()["data"]["key"])
    by_maker = admin.get("/v1/audit-logs", params={"actor": maker["id"]}).json()["data"]
    assert [(e["action"], e["details"]["name"]) for e in by_maker] == [
        ("api_key.created", "by the maker")
    ]
    by_admin = admin.get("/v1/audit-logs", params={"actor": admin.key_id}).json()["data"]
    assert "maker" in {e["details"].get("name") for e in by_admin}
    assert all(e["actorId"] == admin.key_id for e in by_admin)
    assert admin.get("/v1/audit-logs", params={"actor": "x" * 41}).status_code == 400


def test_members_and_other_orgs_cannot_read_the_log(
    admin: Member, member: Member, outsider: Member
) -> None:
    assert member.get("/v1/audit-logs").status_code == 403
    theirs = outsider.get("/v1/audit-logs").json()["data"]
    assert all(e["orgId"] == outsider.org_id for e in theirs)
    assert admin.org_id not in str(theirs)


def test_bad_filters_are_400s(admin: Member) -> None:
    assert admin.get("/v1/audit-logs", params={"since": "yesterday"}).status_code == 400
    assert admin.get("/v1/audit-logs", params={"cursor": "%%%"}).status_code == 400


def test_since_and_until_must_be_iso_8601_not_unix_time(admin: Member) -> None:
    for bad in ("0.0", "1700000000", "-5"):
        response = admin.get("/v1/audit-logs", params={"since": bad})
        assert response.status_code == 400, bad
        assert "ISO 8601" in response.json()["error"]["message"]
    assert admin.get("/v1/audit-logs", params={"since": "2026-01-15T12:00:00Z"}).status_code == 200
