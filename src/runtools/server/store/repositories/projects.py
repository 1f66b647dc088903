"""Projects: the queries, never who may run them.

An organization's default project is made with it (``create_default``,
called by ``organizations.create_org``) and only ever renamed. Deleting
another project moves what it grouped (keys, sandboxes) to the default one,
in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import Conflict
from runtools.server.store.models import ApiKey, Project, Sandbox

DEFAULT_NAME = "Default"
#: What a project groups, by the table that holds its ``project_id``.
_GROUPED = (ApiKey, Sandbox)


def create(
    session: Session,
    clock: Clock,
    org_id: str,
    name: str,
    *,
    color: str | None = None,
    description: str | None = None,
    is_default: bool = False,
) -> Project:
    now = clock.now()
    project = Project(
        id=str(uuid.uuid4()),
        org_id=org_id,
        name=name,
        color=color,
        description=description,
        is_default=is_default,
        created_at=now,
        updated_at=now,
    )
    if name_taken(session, org_id, name):
        raise _name_conflict(name)
    session.add(project)
    _flush_unique(session, name)
    return project


def create_default(session: Session, clock: Clock, org_id: str) -> Project:
    return create(session, clock, org_id, DEFAULT_NAME, is_default=True)


def name_taken(session: Session, org_id: str, name: str, *, besides: str | None = None) -> bool:
    query = select(Project.id).where(Project.org_id == org_id, Project.name == name)
    if besides is not None:
        query = query.where(Project.id != besides)
    return session.scalar(query) is not None


def rename(session: Session, project: Project, name: str) -> None:
    if name_taken(session, project.org_id, name, besides=project.id):
        raise _name_conflict(name)
    project.name = name
    _flush_unique(session, name)


def of_org(session: Session, org_id: str) -> list[Project]:
    """Every project of the organization: the default first, then by creation."""
    query = (
        select(Project)
        .where(Project.org_id == org_id)
        .order_by(Project.is_default.desc(), Project.created_at, Project.id)
    )
    return list(session.scalars(query))


def count(session: Session, org_id: str) -> int:
    return int(session.scalar(select(func.count()).where(Project.org_id == org_id)) or 0)


def find(session: Session, org_id: str, project_id: str) -> Project | None:
    """The organization's project with this id; None for another organization's."""
    project = session.get(Project, project_id)
    return project if project is not None and project.org_id == org_id else None


def default_of(session: Session, org_id: str) -> Project:
    return session.scalars(
        select(Project).where(Project.org_id == org_id, Project.is_default.is_(True))
    ).one()


def grouped_counts(session: Session, project_id: str) -> dict[str, int]:
    """How many of each kind of resource the project groups, by table name."""
    return {
        model.__tablename__: int(
            session.scalar(select(func.count()).where(model.project_id == project_id)) or 0
        )
        for model in _GROUPED
    }


def delete(session: Session, project: Project, into: Project) -> dict[str, int]:
    """Delete ``project``, moving what it grouped into ``into``; how many of each moved."""
    moved = {}
    for model in _GROUPED:
        result = session.execute(
            update(model)
            .where(model.org_id == project.org_id, model.project_id == project.id)
            .values(project_id=into.id)
            .execution_options(synchronize_session=False)
        )
        moved[model.__tablename__] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    session.delete(project)
    session.flush()
    return moved


def ids_of_org(session: Session, org_id: str, ids: Collection[str]) -> set[str]:
    """Which of these ids are projects of the organization."""
    if not ids:
        return set()
    query = select(Project.id).where(Project.org_id == org_id, Project.id.in_(list(ids)))
    return set(session.scalars(query))


def _name_conflict(name: str) -> Conflict:
    return Conflict(f"A project named {name!r} already exists in this organization")


def _flush_unique(session: Session, name: str) -> None:
    # Two concurrent creators can both pass the check; the unique constraint decides.
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise _name_conflict(name) from exc
