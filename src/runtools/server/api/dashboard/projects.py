"""Projects: the organization's list, and for its admins creating, renaming and deleting one.

Deleting a project moves its keys and sandboxes to the default project
(``ProjectService``'s rule, as every other); no other page lives here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import FormField, Gate, Visit, page_router
from runtools.server.api.guards import PUBLIC, Requirement
from runtools.server.domain.errors import NotFound, ServiceError

router = page_router()

PROJECTS = "/dashboard/projects"
NAME_LENGTH = "Give the project a name of 1-100 characters."
# What the API's guards ask of the same calls (api/projects.py).
READ_PROJECTS = Gate(
    Requirement(scope="org:read"), "Projects", "projects", "Seeing projects needs scope org:read."
)
MANAGE_PROJECTS = Gate(
    Requirement(scope="org:write", role="admin"),
    "Projects",
    "projects",
    "Managing projects is for admins.",
)


async def _projects_page(
    visit: Visit, status: int = 200, error: str | None = None, notice: str | None = None
) -> Response:
    projects = await visit.call(visit.runtime.projects.list_projects, visit.principal)
    return visit.page(
        "projects.html",
        status,
        title="Projects",
        nav="projects",
        projects=projects,
        manager=MANAGE_PROJECTS.admits(visit.principal),
        error=error,
        notice=notice,
    )


@router.get("/dashboard/projects", name="dashboard-projects")
async def projects_page(request: Request, _: Annotated[None, PUBLIC]) -> Response:
    if not isinstance(visit := await Visit.start(request, READ_PROJECTS), Visit):
        return visit
    flash = await visit.take_flash()
    return await _projects_page(visit, notice=(flash or {}).get("notice"))


@router.post("/dashboard/projects", name="dashboard-project-create")
async def create_project(
    request: Request,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_PROJECTS), Visit):
        return visit
    name = name.strip()
    if not 1 <= len(name) <= 100:
        return await _projects_page(visit, 400, NAME_LENGTH)
    try:
        made = await visit.call(
            visit.runtime.projects.create,
            visit.principal,
            name=name,
            color=None,
            description=description.strip() or None,
            context=visit.context,
        )
    except ServiceError as exc:
        return await _projects_page(visit, exc.status_code, exc.message)
    return visit.notice(f"Project “{made.name}” is created.", PROJECTS)


@router.post("/dashboard/projects/{project_id}/rename", name="dashboard-project-rename")
async def rename_project(
    request: Request,
    project_id: str,
    _: Annotated[None, PUBLIC],
    csrf: FormField = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_PROJECTS), Visit):
        return visit
    name = name.strip()
    if not 1 <= len(name) <= 100:
        return await _projects_page(visit, 400, NAME_LENGTH)
    try:
        renamed = await visit.call(
            visit.runtime.projects.update,
            visit.principal,
            project_id[:64],
            changes={"name": name},
            context=visit.context,
        )
    except NotFound as exc:
        return visit.not_found(exc)
    except ServiceError as exc:
        return await _projects_page(visit, exc.status_code, exc.message)
    return visit.notice(f"The project is now called “{renamed.name}”.", PROJECTS)


@router.get("/dashboard/projects/{project_id}/delete", name="dashboard-project-delete-page")
async def delete_project_page(
    request: Request, project_id: str, _: Annotated[None, PUBLIC]
) -> Response:
    if not isinstance(visit := await Visit.start(request, MANAGE_PROJECTS), Visit):
        return visit
    project = await visit.found(visit.runtime.projects.get, visit.principal, project_id[:64])
    if isinstance(project, Response):
        return project
    return visit.page(
        "project_delete.html", title=f"Delete “{project.name}”?", nav="projects", project=project
    )


@router.post("/dashboard/projects/{project_id}/delete", name="dashboard-project-delete")
async def delete_project(
    request: Request, project_id: str, _: Annotated[None, PUBLIC], csrf: FormField = ""
) -> Response:
    if not isinstance(visit := await Visit.posted(request, csrf, MANAGE_PROJECTS), Visit):
        return visit
    try:
        deleted = await visit.call(
            visit.runtime.projects.delete, visit.principal, project_id[:64], visit.context
        )
    except NotFound as exc:
        return visit.not_found(exc)
    except ServiceError as exc:
        return await _projects_page(visit, exc.status_code, exc.message)
    return visit.notice(
        f"Project “{deleted.name}” is deleted; "
        "its keys and sandboxes are in the default project now.",
        PROJECTS,
    )
