"""``/v1/projects``: the organization's projects, which group its keys and sandboxes.

Reading takes ``org:read``; creating, changing and deleting take
``org:write`` and role admin (projects are the organization's, like its
name). A project id of another organization is a 404. Deleting moves what
the project grouped to the default project, which cannot be deleted.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from pydantic import Field, field_validator
from starlette.requests import Request

from runtools.server.api.context import request_context, request_id_of, runtime_of
from runtools.server.api.envelope import Envelope, ListEnvelope, ListMeta, RequestModel, meta_of
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.principal import Principal
from runtools.server.services.projects import DeletedProjectOut, ProjectOut, ProjectService

router = tagged_router("projects", "/v1/projects")

ProjectId = Annotated[str, Field(min_length=1, max_length=64)]
ProjectName = Annotated[str, Field(min_length=1, max_length=100, examples=["web"])]
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#3b82f6"])]
Description = Annotated[str, Field(max_length=500)]
ProjectAdmin = Annotated[Principal, requires(scope="org:write", role="admin")]


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    name = value.strip()
    if not name:
        raise ValueError("name must not be blank")
    return name


class CreateProject(RequestModel):
    name: ProjectName
    color: Color | None = None
    description: Description | None = None

    _check_name = field_validator("name")(_clean_name)


class UpdateProject(RequestModel):
    name: ProjectName | None = None
    color: Color | None = None
    """``null`` clears it."""
    description: Description | None = None
    """``null`` clears it."""

    _check_name = field_validator("name")(_clean_name)


def _service(request: Request) -> ProjectService:
    service: ProjectService = runtime_of(request).projects
    return service


@router.get("", name="list")
async def list_projects(
    request: Request, principal: Annotated[Principal, requires(scope="org:read")]
) -> ListEnvelope[ProjectOut]:
    """Every project of the organization, the default one first."""
    views = await anyio.to_thread.run_sync(lambda: _service(request).list_projects(principal))
    return ListEnvelope(
        data=views,
        meta=ListMeta(request_id=request_id_of(request), has_more=False, next_cursor=None),
    )


@router.post("", name="create", status_code=201)
async def create_project(
    request: Request, body: CreateProject, principal: ProjectAdmin
) -> Envelope[ProjectOut]:
    """Create a project (admins); names are unique in the organization."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).create(
            principal,
            name=body.name,
            color=body.color.lower() if body.color else None,
            description=body.description,
            context=request_context(request),
        )
    )
    return Envelope(data=view, meta=meta_of(request))


@router.get("/{project_id}", name="get")
async def get_project(
    request: Request,
    project_id: ProjectId,
    principal: Annotated[Principal, requires(scope="org:read")],
) -> Envelope[ProjectOut]:
    """One project of the organization."""
    view = await anyio.to_thread.run_sync(lambda: _service(request).get(principal, project_id))
    return Envelope(data=view, meta=meta_of(request))


@router.patch("/{project_id}", name="update")
async def update_project(
    request: Request, project_id: ProjectId, body: UpdateProject, principal: ProjectAdmin
) -> Envelope[ProjectOut]:
    """Rename, recolour or redescribe a project (admins); the default project too."""
    fields = body.model_fields_set
    if "name" in fields and body.name is None:
        raise InvalidRequest("name cannot be null")
    changes: dict[str, str | None] = {
        field: getattr(body, field) for field in ("name", "color", "description") if field in fields
    }
    if changes.get("color"):
        changes["color"] = str(changes["color"]).lower()
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).update(
            principal, project_id, changes=changes, context=request_context(request)
        )
    )
    return Envelope(data=view, meta=meta_of(request))


@router.delete("/{project_id}", name="delete")
async def delete_project(
    request: Request, project_id: ProjectId, principal: ProjectAdmin
) -> Envelope[DeletedProjectOut]:
    """Delete a project (admins): its keys and sandboxes move to the default project."""
    view = await anyio.to_thread.run_sync(
        lambda: _service(request).delete(principal, project_id, request_context(request))
    )
    return Envelope(data=view, meta=meta_of(request))
