"""Members: roles, removal, leaving; the last-admin rules; effect on the next request."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from runtools.server.runtime import Runtime
from runtools.server.store.models import AuditEvent, Sandbox, UserSession
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"


def _sign_in(client: TestClient, registry: SecretRegistry, email: str) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = registry.add(response.json()["data"]["accessToken"])
    return {"Authorization": f"Bearer {token}"}


def _audited(runtime: Runtime, action: str) -> list[dict[str, Any]]:
    runtime.flush()
    with runtime.database.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return [{"actor": r.actor_id, "target": r.target_id, **r.details} for r in rows]


def _members(caller: Member) -> dict[str, str]:
    response = caller.get(f"/v1/organizations/{caller.org_id}/members")
    assert response.status_code == 200, response.text
    return {m["email"]: m["role"] for m in response.json()["data"]}


def test_every_member_sees_who_belongs_with_their_roles(
    admin: Member, member: Member, outsider: Member
) -> None:
    expected = {"ada@example.com": "admin", "bob@example.com": "member"}
    assert _members(admin) == _members(member) == expected
    other = outsider.get(f"/v1/organizations/{admin.org_id}/members")
    assert other.status_code == 404


def test_an_admin_promotes_and_demotes_and_it_is_audited_with_old_and_new_role(
    admin: Member, member: Member, runtime: Runtime
) -> None:
    path = f"/v1/organizations/{admin.org_id}/members/{member.user_id}"
    promoted = admin.patch(path, json={"role": "admin"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["data"]["role"] == "admin"
    # The promotion reaches the member's credential on its next request.
    assert member.get("/v1/me").json()["data"]["user"]["role"] == "admin"
    assert member.get("/v1/audit-logs").status_code == 200
    assert admin.patch(path, json={"role": "member"}).status_code == 200
    assert member.get("/v1/me").json()["data"]["user"]["role"] == "member"
    assert member.get("/v1/audit-logs").status_code == 403
    changes = [
        (e["actorUserId"], e["targetUserId"], e["oldRole"], e["newRole"])
        for e in _audited(runtime, "member.role_changed")
    ]
    assert changes == [
        (admin.user_id, member.user_id, "member", "admin"),
        (admin.user_id, member.user_id, "admin", "member"),
    ]
    assert admin.patch(path, json={"role": "owner"}).status_code == 400


def test_members_manage_nobody_and_nobody_promotes_themselves(
    admin: Member, member: Member
) -> None:
    base = f"/v1/organizations/{admin.org_id}/members"
    assert member.patch(f"{base}/{member.user_id}", json={"role": "admin"}).status_code == 403
    assert member.patch(f"{base}/{admin.user_id}", json={"role": "member"}).status_code == 403
    assert member.delete(f"{base}/{admin.user_id}").status_code == 403
    assert _members(admin)["bob@example.com"] == "member"


def test_an_admin_cannot_promote_themselves_back_after_demoting_themselves(
    tenants: Tenants, admin: Member
) -> None:
    other = tenants.member("acme", "cy@example.com", "admin")
    base = f"/v1/organizations/{admin.org_id}/members"
    assert admin.patch(f"{base}/{admin.user_id}", json={"role": "member"}).status_code == 200
    # Now a member: the guard refuses; had the role check been skipped, the rule would.
    assert admin.patch(f"{base}/{admin.user_id}", json={"role": "admin"}).status_code == 403
    assert _members(other)["ada@example.com"] == "member"


def test_the_last_admin_can_be_neither_demoted_nor_removed_nor_leave(
    admin: Member, member: Member
) -> None:
    base = f"/v1/organizations/{admin.org_id}/members"
    for response in (
        admin.patch(f"{base}/{admin.user_id}", json={"role": "member"}),
        admin.delete(f"{base}/{admin.user_id}"),
        admin.post(f"{base}/me/leave"),
    ):
        assert response.status_code == 409, response.text
        assert "last admin" in response.json()["error"]["message"]
    assert _members(admin)["ada@example.com"] == "admin"
    # With a second admin, the first may go.
    assert admin.patch(f"{base}/{member.user_id}", json={"role": "admin"}).status_code == 200
    assert admin.post(f"{base}/me/leave").status_code == 200
    assert admin.get("/v1/me").status_code == 401
    assert _members(member) == {"bob@example.com": "admin"}


def test_a_removed_member_is_refused_on_the_next_request_but_their_sandboxes_stay(
    tenants: Tenants,
    admin: Member,
    client: TestClient,
    secret_registry: SecretRegistry,
    runtime: Runtime,
) -> None:
    bob = tenants.member("acme", "bob@example.com", "member", password=PASSWORD)
    session = _sign_in(client, secret_registry, "bob@example.com")
    assert client.get("/v1/me", headers=session).status_code == 200
    assert bob.get("/v1/me").status_code == 200  # both cached now
    with runtime.database.session() as db:
        from datetime import UTC, datetime

        now = datetime(2026, 1, 15, tzinfo=UTC)
        db.add(
            Sandbox(
                id="sandbox-bobs",
                org_id=bob.org_id,
                owner_user_id=bob.user_id,
                name="bobs",
                template="base-ubuntu",
                status="paused",
                tags=[],
                env_keys=[],
                vcpus=1,
                memory_mib=256,
                disk_mib=256,
                node="elsewhere",
                last_activity_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        db.commit()

    removed = admin.delete(f"/v1/organizations/{admin.org_id}/members/{bob.user_id}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["data"]["email"] == "bob@example.com"
    assert client.get("/v1/me", headers=session).status_code == 401
    assert bob.get("/v1/me").status_code == 401
    key = admin.get(f"/v1/api-keys/{bob.key_id}").json()["data"]
    assert key["status"] == "owner_removed"
    with runtime.database.session() as db:
        ended = db.scalars(select(UserSession).where(UserSession.user_id == bob.user_id)).all()
        assert {(s.revoke_reason is not None, s.revoke_reason) for s in ended} == {
            (True, "member_removed")
        }
        assert db.get(Sandbox, "sandbox-bobs") is not None
    [event] = _audited(runtime, "member.removed")
    assert (event["actorUserId"], event["targetUserId"], event["oldRole"], event["newRole"]) == (
        admin.user_id,
        bob.user_id,
        "member",
        None,
    )
    again = admin.delete(f"/v1/organizations/{admin.org_id}/members/{bob.user_id}")
    assert again.status_code == 404


def test_another_organizations_member_cannot_be_touched(admin: Member, outsider: Member) -> None:
    for response in (
        outsider.patch(
            f"/v1/organizations/{admin.org_id}/members/{admin.user_id}", json={"role": "member"}
        ),
        outsider.delete(f"/v1/organizations/{admin.org_id}/members/{admin.user_id}"),
        # Their own org id, someone else's user: not a member here.
        outsider.delete(f"/v1/organizations/{outsider.org_id}/members/{admin.user_id}"),
        outsider.post(f"/v1/organizations/{admin.org_id}/members/me/leave"),
    ):
        assert response.status_code == 404, response.text
    assert _members(admin) == {"ada@example.com": "admin"}
