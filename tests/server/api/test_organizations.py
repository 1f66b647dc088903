"""``/v1/organizations``: mine with my role, create (I am admin), rename (admins)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from runtools.server.runtime import Runtime
from support.secret_registry import SecretRegistry
from support.tenants import Member, Tenants

PASSWORD = "correct horse battery staple"


def _sign_in(client: TestClient, registry: SecretRegistry, email: str) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = registry.add(response.json()["data"]["accessToken"])
    return {"Authorization": f"Bearer {token}"}


def _events(runtime: Runtime, action: str) -> list[dict[str, object]]:
    runtime.flush()
    with runtime.database.session() as session:
        from sqlalchemy import select

        from runtools.server.store.models import AuditEvent

        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return [
            {"org": r.org_id, "actor": r.actor_id, "target": r.target_id, **r.details} for r in rows
        ]


def test_i_list_my_organizations_with_my_role_in_each(tenants: Tenants) -> None:
    in_acme = tenants.member("acme", "ada@example.com", "admin")
    in_globex = tenants.member("globex", "ada@example.com", "member")
    tenants.member("initech", "someone@example.com", "admin")
    listed = in_acme.get("/v1/organizations").json()["data"]
    assert [(o["name"], o["role"], o["current"]) for o in listed] == [
        ("acme", "admin", True),
        ("globex", "member", False),
    ]
    assert {o["id"] for o in listed} == {in_acme.org_id, in_globex.org_id}
    one = in_globex.get(f"/v1/organizations/{in_globex.org_id}").json()["data"]
    assert (one["name"], one["role"], one["current"]) == ("globex", "member", True)


def test_a_signed_in_person_creates_an_organization_and_is_its_admin(
    tenants: Tenants, client: TestClient, secret_registry: SecretRegistry, runtime: Runtime
) -> None:
    ada = tenants.member("acme", "ada@example.com", "member", password=PASSWORD)
    session = _sign_in(client, secret_registry, "ada@example.com")
    created = client.post("/v1/organizations", headers=session, json={"name": "newco"})
    assert created.status_code == 201, created.text
    org = created.json()["data"]
    assert (org["name"], org["role"], org["current"]) == ("newco", "admin", False)
    mine = client.get("/v1/organizations", headers=session).json()["data"]
    assert {o["name"]: o["role"] for o in mine} == {"acme": "member", "newco": "admin"}
    assert _events(runtime, "org.created")[0]["newRole"] == "admin"
    # A key acts for its organization only: it does not make new ones.
    by_key = ada.post("/v1/organizations", json={"name": "other"})
    assert by_key.status_code == 403
    taken = client.post("/v1/organizations", headers=session, json={"name": "newco"})
    assert taken.status_code == 409
    bad = client.post("/v1/organizations", headers=session, json={"name": "!!"})
    assert bad.status_code == 400


def test_an_admin_renames_the_organization_and_every_credential_sees_it(
    admin: Member, member: Member, runtime: Runtime
) -> None:
    assert member.get("/v1/me").json()["data"]["organization"]["name"] == "acme"
    renamed = admin.patch(f"/v1/organizations/{admin.org_id}", json={"name": "acme-labs"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["name"] == "acme-labs"
    assert member.get("/v1/me").json()["data"]["organization"]["name"] == "acme-labs"
    key = admin.get(f"/v1/api-keys/{admin.key_id}").json()["data"]
    assert key["orgName"] == "acme-labs"
    [event] = _events(runtime, "org.renamed")
    assert (event["oldName"], event["newName"], event["actor"]) == (
        "acme",
        "acme-labs",
        admin.key_id,
    )


def test_members_cannot_rename_and_other_organizations_are_not_found(
    admin: Member, member: Member, outsider: Member
) -> None:
    refused = member.patch(f"/v1/organizations/{member.org_id}", json={"name": "mine"})
    assert refused.status_code == 403
    assert "role admin" in refused.json()["error"]["message"]
    for response in (
        outsider.patch(f"/v1/organizations/{admin.org_id}", json={"name": "pwned"}),
        outsider.get(f"/v1/organizations/{admin.org_id}"),
        admin.get("/v1/organizations/org_doesnotexist"),
    ):
        assert response.status_code == 404
    assert admin.get(f"/v1/organizations/{admin.org_id}").json()["data"]["name"] == "acme"
    taken = admin.patch(f"/v1/organizations/{admin.org_id}", json={"name": "globex"})
    assert taken.status_code == 409
