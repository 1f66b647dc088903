"""``rt.projects``: the organization's projects, which group its keys and sandboxes.

A project is named by its id (a UUID) or, for convenience, its name
(``rt.projects.resolve("web")``). Every organization has a default project
that cannot be deleted; deleting another moves its keys and sandboxes to
the default one. Changing projects takes an admin.
"""

from __future__ import annotations

from typing import Any

from runtools._models import DeletedProject, Project
from runtools._resource import AsyncResource, SyncResource, path_segment
from runtools._types import NOT_GIVEN, NotGiven

__all__ = ["AsyncProjects", "Projects"]

_PATH = "/projects"


def _project_path(project_id: str) -> str:
    return f"{_PATH}/{path_segment(project_id, name='project_id')}"


def _create_body(name: str, color: str | None, description: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if color is not None:
        body["color"] = color
    if description is not None:
        body["description"] = description
    return body


def _update_body(
    name: str | NotGiven, color: str | NotGiven | None, description: str | NotGiven | None
) -> dict[str, Any]:
    body = {
        field: value
        for field, value in (("name", name), ("color", color), ("description", description))
        if not isinstance(value, NotGiven)
    }
    if not body:
        raise ValueError("nothing to change: pass name, color or description")
    return body


def _named(projects: list[Project], ref: str) -> Project:
    for project in projects:
        if ref in (project.id, project.name):
            return project
    raise LookupError(f"no project {ref!r} in this organization")


class Projects(SyncResource):
    def list(self) -> list[Project]:
        """Every project of the organization, the default one first."""
        return self._client._request("GET", _PATH).page(Project).data

    def create(
        self, name: str, *, color: str | None = None, description: str | None = None
    ) -> Project:
        """A new project (admins); ``color`` is ``#rrggbb``."""
        body = _create_body(name, color, description)
        return self._client._request("POST", _PATH, json=body).model(Project)

    def get(self, project_id: str) -> Project:
        return self._client._request("GET", _project_path(project_id)).model(Project)

    def resolve(self, ref: str) -> Project:
        """The project with this id or name (``LookupError`` if there is none)."""
        return _named(self.list(), ref)

    def update(
        self,
        project_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        color: str | NotGiven | None = NOT_GIVEN,
        description: str | NotGiven | None = NOT_GIVEN,
    ) -> Project:
        """Change what is given (admins); ``None`` clears ``color`` or ``description``."""
        body = _update_body(name, color, description)
        return self._client._request("PATCH", _project_path(project_id), json=body).model(Project)

    def rename(self, project_id: str, name: str) -> Project:
        return self.update(project_id, name=name)

    def delete(self, project_id: str) -> DeletedProject:
        """Delete a project (admins); its keys and sandboxes move to the default project."""
        return self._client._request("DELETE", _project_path(project_id)).model(DeletedProject)


class AsyncProjects(AsyncResource):
    async def list(self) -> list[Project]:
        """Every project of the organization, the default one first."""
        return (await self._client._request("GET", _PATH)).page(Project).data

    async def create(
        self, name: str, *, color: str | None = None, description: str | None = None
    ) -> Project:
        """A new project (admins); ``color`` is ``#rrggbb``."""
        body = _create_body(name, color, description)
        return (await self._client._request("POST", _PATH, json=body)).model(Project)

    async def get(self, project_id: str) -> Project:
        return (await self._client._request("GET", _project_path(project_id))).model(Project)

    async def resolve(self, ref: str) -> Project:
        """The project with this id or name (``LookupError`` if there is none)."""
        return _named(await self.list(), ref)

    async def update(
        self,
        project_id: str,
        *,
        name: str | NotGiven = NOT_GIVEN,
        color: str | NotGiven | None = NOT_GIVEN,
        description: str | NotGiven | None = NOT_GIVEN,
    ) -> Project:
        """Change what is given (admins); ``None`` clears ``color`` or ``description``."""
        body = _update_body(name, color, description)
        envelope = await self._client._request("PATCH", _project_path(project_id), json=body)
        return envelope.model(Project)

    async def rename(self, project_id: str, name: str) -> Project:
        return await self.update(project_id, name=name)

    async def delete(self, project_id: str) -> DeletedProject:
        """Delete a project (admins); its keys and sandboxes move to the default project."""
        envelope = await self._client._request("DELETE", _project_path(project_id))
        return envelope.model(DeletedProject)
