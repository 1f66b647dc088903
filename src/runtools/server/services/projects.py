"""Projects: an organization's resources grouped (keys, sandboxes), never its permissions.

Rules enforced here, whatever the transport:
- a project belongs to one organization; another organization's project
  id is "not found" on ``/v1/projects/{id}``, and a ``projectId`` naming one
  on a key, a sandbox or a list filter is a 400 (``checked_project``);
- every organization has one default project, made with it; it can be
  renamed and recoloured, never deleted;
- deleting a project moves what it grouped to the default project in the
  same transaction, so nothing is left naming a project that is gone;
- names are unique within an organization (409);
- every change is audited with actor and old -> new values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtools import _models as sdk
from runtools.server.domain.audit import AuditRecord, RequestContext
from runtools.server.domain.clock import Clock, as_utc
from runtools.server.domain.errors import Conflict, InvalidRequest, NotFound, QuotaExceeded
from runtools.server.domain.principal import Principal
from runtools.server.domain.wire import sent_shape
from runtools.server.store.database import Database
from runtools.server.store.models import Project
from runtools.server.store.repositories import audit, projects

if TYPE_CHECKING:
    from runtools.server.store.database import Session

#: Projects an organization may have, its default one included.
MAX_PROJECTS = 100


@sent_shape
class ProjectOut(sdk.Project):
    # A project as its organization's members see it: the SDK's ``Project``,
    # every field required.
    ...


@sent_shape
class DeletedProjectOut(sdk.DeletedProject):
    # A deleted project and where its resources went.
    ...


def project_view(project: Project) -> ProjectOut:
    return ProjectOut(**_fields(project))


def _fields(project: Project) -> dict[str, object]:
    return {
        "id": project.id,
        "name": project.name,
        "color": project.color,
        "description": project.description,
        "is_default": project.is_default,
        "org_id": project.org_id,
        "created_at": as_utc(project.created_at),
        "updated_at": as_utc(project.updated_at),
    }


def checked_project(session: Session, caller: Principal, project_id: str | None) -> str | None:
    """``project_id`` if it names a project of the caller's organization (None stays None)."""
    if project_id is None:
        return None
    if projects.find(session, caller.org_id, project_id) is None:
        raise InvalidRequest(f"projectId {project_id!r} is not a project of this organization")
    return project_id


class ProjectService:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def list_projects(self, caller: Principal) -> list[ProjectOut]:
        with self._database.session() as session:
            return [project_view(p) for p in projects.of_org(session, caller.org_id)]

    def get(self, caller: Principal, project_id: str) -> ProjectOut:
        with self._database.session() as session:
            return project_view(self._find(session, caller, project_id))

    def create(
        self,
        caller: Principal,
        *,
        name: str,
        color: str | None,
        description: str | None,
        context: RequestContext,
    ) -> ProjectOut:
        with self._database.session() as session:
            if projects.count(session, caller.org_id) >= MAX_PROJECTS:
                raise QuotaExceeded(f"An organization has at most {MAX_PROJECTS} projects")
            project = projects.create(
                session, self._clock, caller.org_id, name, color=color, description=description
            )
            self._audit(
                session,
                caller,
                "project.created",
                project,
                context,
                {"name": name, "color": color, "description": description},
            )
            view = project_view(project)
            session.commit()
        return view

    def update(
        self,
        caller: Principal,
        project_id: str,
        *,
        changes: dict[str, str | None],
        context: RequestContext,
    ) -> ProjectOut:
        """Apply ``changes`` (any of ``name``, ``color``, ``description``; None clears)."""
        with self._database.session() as session:
            project = self._find(session, caller, project_id)
            old = {field: getattr(project, field) for field in changes}
            if "name" in changes:
                name = changes["name"]
                if name is None:
                    raise InvalidRequest("A project's name cannot be removed")
                projects.rename(session, project, name)
            for field in ("color", "description"):
                if field in changes:
                    setattr(project, field, changes[field])
            changed = {f: v for f, v in changes.items() if old[f] != v}
            if changed:
                project.updated_at = self._clock.now()
                self._audit(
                    session,
                    caller,
                    "project.updated",
                    project,
                    context,
                    {"old": {f: old[f] for f in changed}, "new": changed},
                )
            view = project_view(project)
            session.commit()
        return view

    def delete(
        self, caller: Principal, project_id: str, context: RequestContext
    ) -> DeletedProjectOut:
        with self._database.session() as session:
            project = self._find(session, caller, project_id)
            if project.is_default:
                raise Conflict(
                    "The default project cannot be deleted: it is where the resources "
                    "of deleted projects go"
                )
            default = projects.default_of(session, caller.org_id)
            fields = _fields(project)
            moved = projects.delete(session, project, into=default)
            self._audit(
                session,
                caller,
                "project.deleted",
                project,
                context,
                {
                    "name": fields["name"],
                    "movedTo": default.id,
                    "movedApiKeys": moved["api_keys"],
                    "movedSandboxes": moved["sandboxes"],
                },
            )
            view = DeletedProjectOut(
                **fields,
                moved_to=default.id,
                moved_api_keys=moved["api_keys"],
                moved_sandboxes=moved["sandboxes"],
            )
            session.commit()
        return view

    def _find(self, session: Session, caller: Principal, project_id: str) -> Project:
        project = projects.find(session, caller.org_id, project_id)
        if project is None:
            raise NotFound(f"No project {project_id!r}")
        return project

    def _audit(
        self,
        session: Session,
        caller: Principal,
        action: str,
        project: Project,
        context: RequestContext,
        details: dict[str, object],
    ) -> None:
        audit.record(
            session,
            AuditRecord(
                action=action,
                outcome="success",
                org_id=caller.org_id,
                actor_type=caller.credential_type,
                actor_id=caller.credential_id,
                context=context,
                target_type="project",
                target_id=project.id,
                details={"actorUserId": caller.user_id, **details},
            ),
            self._clock.now(),
        )
