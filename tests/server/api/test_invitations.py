"""Invitations: shown once, stored hashed, single use, 7 days, for one account only."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from runtools.server.domain.clock import FrozenClock
from runtools.server.runtime import Runtime
from runtools.server.store.models import AuditEvent, Invitation
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"
CANNOT = "No such invitation, or it cannot be accepted"


def _session(client: TestClient, registry: SecretRegistry, email: str) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {registry.add(response.json()['data']['accessToken'])}"}


def _invite(
    admin: Member, registry: SecretRegistry, email: str, role: str = "member"
) -> dict[str, Any]:
    response = admin.post(
        f"/v1/organizations/{admin.org_id}/invitations", json={"email": email, "role": role}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    data: dict[str, Any] = response.json()["data"]
    registry.add(data["token"])
    return data


def _accept(client: TestClient, session: dict[str, str], token: str) -> Any:
    return client.post("/v1/invitations/accept", headers=session, json={"token": token})


def _refusal(response: Any) -> tuple[int, str, str]:
    """What a caller learns from a refusal: status, code and message (not the request id)."""
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def _accept_failures(runtime: Runtime) -> list[str | None]:
    runtime.flush()
    with runtime.database.session() as session:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "invitation.accept_failed")
            .order_by(AuditEvent.id)
        )
        return [row.reason for row in rows]


def test_an_invitation_is_shown_once_stored_hashed_and_accepted_by_its_address(
    tenants: Tenants,
    admin: Member,
    client: TestClient,
    secret_registry: SecretRegistry,
    runtime: Runtime,
) -> None:
    tenants.member("globex", "cy@example.com", "admin", password=PASSWORD)
    issued = _invite(admin, secret_registry, "Cy@Example.com", role="admin")
    assert issued["token"].startswith("rt_inv_")
    assert (issued["email"], issued["role"], issued["status"]) == (
        "cy@example.com",
        "admin",
        "pending",
    )
    assert issued["expiresAt"].startswith("2026-01-22")  # 7 days after the frozen noon
    listed = admin.get(f"/v1/organizations/{admin.org_id}/invitations")
    assert issued["token"] not in listed.text
    assert [i["status"] for i in listed.json()["data"]] == ["pending"]
    with runtime.database.session() as session:
        row = session.get_one(Invitation, issued["id"])
        assert issued["token"] not in (row.token_hash, row.email, row.id)

    cy = _session(client, secret_registry, "cy@example.com")
    accepted = _accept(client, cy, issued["token"])
    assert accepted.status_code == 200, accepted.text
    joined = accepted.json()["data"]
    assert (joined["id"], joined["role"], joined["current"]) == (admin.org_id, "admin", False)
    members = admin.get(f"/v1/organizations/{admin.org_id}/members").json()["data"]
    assert {m["email"]: m["role"] for m in members}["cy@example.com"] == "admin"
    [status] = [
        i["status"]
        for i in admin.get(f"/v1/organizations/{admin.org_id}/invitations").json()["data"]
    ]
    assert status == "accepted"
    # Single use: the same token again, even by the same account, is refused.
    assert _refusal(_accept(client, cy, issued["token"]))[0] == 404
    assert _accept_failures(runtime) == ["used"]


def test_every_failure_to_accept_looks_the_same_and_is_audited_with_its_reason(
    tenants: Tenants,
    admin: Member,
    client: TestClient,
    secret_registry: SecretRegistry,
    runtime: Runtime,
    clock: FrozenClock,
) -> None:
    tenants.member("globex", "cy@example.com", "admin", password=PASSWORD)
    tenants.member("globex", "dan@example.com", "member", password=PASSWORD)
    cy = _session(client, secret_registry, "cy@example.com")
    dan = _session(client, secret_registry, "dan@example.com")

    for_cy = _invite(admin, secret_registry, "cy@example.com")
    wrong_account = _accept(client, dan, for_cy["token"])
    unknown = _accept(client, cy, "rt_inv_" + secrets.token_urlsafe(32))
    not_ours = _accept(client, cy, "rt_live_nothing")
    revoked_one = _invite(admin, secret_registry, "dan@example.com")
    assert (
        admin.delete(f"/v1/organizations/{admin.org_id}/invitations/{revoked_one['id']}").json()[
            "data"
        ]["status"]
        == "revoked"
    )
    revoked = _accept(client, dan, revoked_one["token"])
    clock.advance(timedelta(days=7))
    cy = _session(client, secret_registry, "cy@example.com")
    expired = _accept(client, cy, for_cy["token"])

    refusals = {_refusal(r) for r in (wrong_account, unknown, not_ours, revoked, expired)}
    assert len(refusals) == 1
    [(status, code, message)] = refusals
    assert (status, code) == (404, "not_found")
    assert message.startswith(CANNOT)
    assert _accept_failures(runtime) == [
        "wrong_account",
        "unknown",
        "unknown",
        "revoked",
        "expired",
    ]
    members = admin.get(f"/v1/organizations/{admin.org_id}/members").json()["data"]
    assert {m["email"] for m in members} == {"ada@example.com"}


def test_guessing_tokens_is_throttled(
    tenants: Tenants, admin: Member, client: TestClient, secret_registry: SecretRegistry
) -> None:
    tenants.member("globex", "cy@example.com", "admin", password=PASSWORD)
    cy = _session(client, secret_registry, "cy@example.com")
    real = _invite(admin, secret_registry, "cy@example.com")
    answers = [
        _accept(client, cy, "rt_inv_" + secrets.token_urlsafe(32)).status_code for _ in range(8)
    ]
    assert answers[:5] == [404] * 5
    assert set(answers[5:]) == {429}
    # Even the right token waits: the guesser cannot tell a hit from a miss.
    assert _accept(client, cy, real["token"]).status_code == 429


def test_only_admins_invite_and_only_in_their_organization(
    admin: Member, member: Member, outsider: Member, secret_registry: SecretRegistry
) -> None:
    base = f"/v1/organizations/{admin.org_id}/invitations"
    assert member.post(base, json={"email": "x@example.com"}).status_code == 403
    assert member.get(base).status_code == 403
    invited = _invite(admin, secret_registry, "x@example.com")
    assert outsider.post(base, json={"email": "y@example.com"}).status_code == 404
    assert outsider.get(base).status_code == 404
    assert outsider.delete(f"{base}/{invited['id']}").status_code == 404
    theirs = f"/v1/organizations/{outsider.org_id}/invitations/{invited['id']}"
    assert outsider.delete(theirs).status_code == 404
    assert [i["status"] for i in admin.get(base).json()["data"]] == ["pending"]
    again = admin.post(base, json={"email": "x@example.com"})
    assert again.status_code == 409
    already = admin.post(base, json={"email": "bob@example.com"})
    assert already.status_code == 409
    assert admin.post(base, json={"email": "z@example.com", "role": "owner"}).status_code == 400
    assert admin.post(base, json={"email": "not an email"}).status_code == 400


def test_an_invitation_lets_its_address_sign_up_though_sign_up_is_closed(
    admin: Member, client: TestClient, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    closed = client.post(
        "/v1/auth/signup", json={"email": "new@example.com", "password": PASSWORD, "org": "n"}
    )
    assert closed.status_code == 403
    invited = _invite(admin, secret_registry, "new@example.com")
    body = {"password": PASSWORD, "invitation": invited["token"]}
    wrong = client.post("/v1/auth/signup", json={**body, "email": "other@example.com"})
    assert _refusal(wrong)[0] == 404
    assert _refusal(wrong)[2].startswith(CANNOT)
    signed_up = client.post("/v1/auth/signup", json={**body, "email": "new@example.com"})
    assert signed_up.status_code == 201, signed_up.text
    tokens = signed_up.json()["data"]
    secret_registry.add(tokens["accessToken"])
    secret_registry.add(tokens["refreshToken"])
    assert tokens["org"] == {"id": admin.org_id, "name": "acme"}
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    assert me.json()["data"]["user"]["role"] == "member"
    # The refused attempt made no account: that address can still be invited.
    assert (
        admin.post(
            f"/v1/organizations/{admin.org_id}/invitations", json={"email": "other@example.com"}
        ).status_code
        == 201
    )
    reused = client.post("/v1/auth/signup", json={**body, "email": "again@example.com"})
    assert reused.status_code == 404
