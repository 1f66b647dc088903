"""Projects: a default one per organization, CRUD for admins, projectId checked everywhere."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from runtools.server.runtime import Runtime
from runtools.server.store.models import AuditEvent
from support.secret_registry import SecretRegistry
from support.served_app import Caller
from support.tenants import Member


def _projects(caller: Member) -> list[dict[str, Any]]:
    response = caller.get("/v1/projects")
    assert response.status_code == 200, response.text
    projects: list[dict[str, Any]] = response.json()["data"]
    return projects


def _default(caller: Member) -> dict[str, Any]:
    [default] = [p for p in _projects(caller) if p["isDefault"]]
    return default


def _create(caller: Member, **body: Any) -> dict[str, Any]:
    response = caller.post("/v1/projects", json=body)
    assert response.status_code == 201, response.text
    project: dict[str, Any] = response.json()["data"]
    return project


def test_every_organization_starts_with_a_default_project(admin: Member, outsider: Member) -> None:
    [mine] = _projects(admin)
    assert mine["isDefault"] is True
    assert mine["name"] == "Default"
    assert mine["orgId"] == admin.org_id
    assert uuid.UUID(mine["id"])
    assert set(mine) == {
        "id",
        "name",
        "color",
        "description",
        "isDefault",
        "orgId",
        "createdAt",
        "updatedAt",
    }
    [theirs] = _projects(outsider)
    assert theirs["id"] != mine["id"]


def test_an_admin_creates_renames_and_deletes_a_project_and_each_is_audited(
    admin: Member, runtime: Runtime
) -> None:
    web = _create(admin, name="web", color="#3B82F6", description="The storefront")
    assert (web["name"], web["color"], web["description"]) == ("web", "#3b82f6", "The storefront")
    assert web["isDefault"] is False
    assert [p["name"] for p in _projects(admin)] == ["Default", "web"]
    renamed = admin.patch(f"/v1/projects/{web['id']}", json={"name": "shop", "color": None})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data"]["name"] == "shop"
    assert renamed.json()["data"]["color"] is None
    assert renamed.json()["data"]["description"] == "The storefront"
    assert admin.get(f"/v1/projects/{web['id']}").json()["data"]["name"] == "shop"
    deleted = admin.delete(f"/v1/projects/{web['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["movedTo"] == _default(admin)["id"]
    assert admin.get(f"/v1/projects/{web['id']}").status_code == 404
    runtime.flush()
    with runtime.database.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.target_id == web["id"]).order_by(AuditEvent.id)
        ).all()
        recorded = [(e.action, e.actor_id, e.org_id) for e in events]
        update = next(e.details for e in events if e.action == "project.updated")
    assert recorded == [
        ("project.created", admin.key_id, admin.org_id),
        ("project.updated", admin.key_id, admin.org_id),
        ("project.deleted", admin.key_id, admin.org_id),
    ]
    assert update["old"] == {"name": "web", "color": "#3b82f6"}
    assert update["new"] == {"name": "shop", "color": None}


def test_the_default_project_is_renamed_but_never_deleted(admin: Member) -> None:
    default = _default(admin)
    refused = admin.delete(f"/v1/projects/{default['id']}")
    assert refused.status_code == 409
    assert "default project cannot be deleted" in refused.json()["error"]["message"]
    renamed = admin.patch(f"/v1/projects/{default['id']}", json={"name": "General"})
    assert renamed.status_code == 200
    assert _default(admin)["name"] == "General"


def test_names_are_unique_in_an_organization_not_across(admin: Member, outsider: Member) -> None:
    _create(admin, name="web")
    again = admin.post("/v1/projects", json={"name": "web"})
    assert again.status_code == 409
    _create(outsider, name="web")
    other = _create(admin, name="api")
    assert admin.patch(f"/v1/projects/{other['id']}", json={"name": "web"}).status_code == 409


def test_bad_fields_are_400_and_nothing_is_created(admin: Member) -> None:
    for body in (
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "web", "color": "blue"},
        {"name": "web", "description": "d" * 501},
        {"name": "web", "owner": "me"},
        {},
    ):
        response = admin.post("/v1/projects", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    default = _default(admin)
    assert admin.patch(f"/v1/projects/{default['id']}", json={"name": None}).status_code == 400
    assert [p["name"] for p in _projects(admin)] == ["Default"]


def test_members_read_projects_and_change_none(admin: Member, member: Member) -> None:
    web = _create(admin, name="web")
    assert [p["name"] for p in _projects(member)] == ["Default", "web"]
    assert member.get(f"/v1/projects/{web['id']}").status_code == 200
    for response in (
        member.post("/v1/projects", json={"name": "mine"}),
        member.patch(f"/v1/projects/{web['id']}", json={"name": "hijacked"}),
        member.delete(f"/v1/projects/{web['id']}"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["message"] == "This call requires role admin"
    assert [p["name"] for p in _projects(admin)] == ["Default", "web"]


def test_another_organizations_project_is_404(admin: Member, outsider: Member) -> None:
    theirs = _create(outsider, name="secret")
    assert admin.get(f"/v1/projects/{theirs['id']}").status_code == 404
    assert admin.patch(f"/v1/projects/{theirs['id']}", json={"name": "x"}).status_code == 404
    assert admin.delete(f"/v1/projects/{theirs['id']}").status_code == 404
    assert outsider.get(f"/v1/projects/{theirs['id']}").json()["data"]["name"] == "secret"


def test_a_key_names_only_a_project_of_its_organization(
    admin: Member, outsider: Member, secret_registry: SecretRegistry
) -> None:
    theirs = _create(outsider, name="theirs")
    for project_id in (theirs["id"], str(uuid.uuid4())):
        refused = admin.post("/v1/api-keys", json={"name": "ci", "projectId": project_id})
        assert refused.status_code == 400, refused.text
        assert "not a project of this organization" in refused.json()["error"]["message"]
    web = _create(admin, name="web")
    key = admin.create_key(secret_registry, name="ci", projectId=web["id"])
    assert key["projectId"] == web["id"]
    moved = admin.patch(f"/v1/api-keys/{key['id']}", json={"projectId": theirs["id"]})
    assert moved.status_code == 400
    assert admin.get(f"/v1/api-keys/{key['id']}").json()["data"]["projectId"] == web["id"]
    keys = [
        k["id"] for k in admin.get("/v1/api-keys", params={"projectId": web["id"]}).json()["data"]
    ]
    assert keys == [key["id"]]
    foreign = admin.get("/v1/api-keys", params={"projectId": theirs["id"]})
    assert foreign.status_code == 400


def test_deleting_a_project_moves_its_keys_to_the_default_project(
    admin: Member, member: Member, secret_registry: SecretRegistry
) -> None:
    web = _create(admin, name="web")
    mine = admin.create_key(secret_registry, name="admin's", projectId=web["id"])
    theirs = member.create_key(secret_registry, name="member's", projectId=web["id"])
    untouched = admin.create_key(secret_registry, name="no project")
    deleted = admin.delete(f"/v1/projects/{web['id']}").json()["data"]
    assert deleted["movedApiKeys"] == 2
    default = _default(admin)["id"]
    assert admin.get(f"/v1/api-keys/{mine['id']}").json()["data"]["projectId"] == default
    assert member.get(f"/v1/api-keys/{theirs['id']}").json()["data"]["projectId"] == default
    assert admin.get(f"/v1/api-keys/{untouched['id']}").json()["data"]["projectId"] is None
    # The keys keep working.
    assert admin.http.get("/v1/me", headers={"X-API-Key": theirs["key"]}).status_code == 200


def test_a_sandbox_names_only_a_project_of_its_organization_and_moves_with_a_delete(
    ada: Caller, eve: Caller
) -> None:
    theirs = eve.post("/v1/projects", json={"name": "theirs"}).json()["data"]
    refused = ada.post("/v1/sandboxes", json={"name": "env", "projectId": theirs["id"]})
    assert refused.status_code == 400, refused.text
    assert ada.get("/v1/sandboxes").json()["data"] == []
    web = ada.post("/v1/projects", json={"name": "web"}).json()["data"]
    created = ada.post("/v1/sandboxes", json={"name": "env", "projectId": web["id"]})
    assert created.status_code == 201, created.text
    sandbox = created.json()["data"]
    assert sandbox["projectId"] == web["id"]
    listed = ada.get("/v1/sandboxes", params={"projectId": web["id"]}).json()["data"]
    assert [s["id"] for s in listed] == [sandbox["id"]]
    assert ada.get("/v1/sandboxes", params={"projectId": theirs["id"]}).status_code == 400
    deleted = ada.delete(f"/v1/projects/{web['id']}").json()["data"]
    assert deleted["movedSandboxes"] == 1
    moved = ada.get(f"/v1/sandboxes/{sandbox['id']}").json()["data"]
    assert moved["projectId"] == deleted["movedTo"]
    assert moved["status"] == "running"
