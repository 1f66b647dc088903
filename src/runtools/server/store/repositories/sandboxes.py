"""Every query over sandbox records. No HTTP, no driver, no rules: rows in, rows out.

The sandbox services decide who may do what and call these inside their
unit of work; they read the rows returned and change them only through
functions here. Which status allows which action is theirs to say
(``services/sandboxes/states.py``): here a status is a string to match.

Paging is keyset on ``(created_at, id)``, newest first: sandbox ids are
random, so the id alone does not order them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.domain.clock import as_utc
from runtools.server.domain.errors import InvalidRequest
from runtools.server.domain.paging import Page
from runtools.server.store.models import Organization, Sandbox, SandboxTag

__all__ = [
    "NameTaken",
    "count_live",
    "find",
    "get",
    "get_one",
    "insert",
    "lock_node",
    "lock_org",
    "memory_promised",
    "on_node",
    "remove",
    "replace_tags",
    "search",
    "status_of",
    "touch",
    "transition",
]


class NameTaken(Exception):
    """Another sandbox of the organization that is not destroyed has the name.

    The unique index decided (a concurrent create got there first); the
    transaction cannot go on and is rolled back.
    """


_BAD_CURSOR = "Invalid cursor: pass back nextCursor unchanged"


def lock_org(session: Session, org_id: str) -> None:
    """Serialise the organization's sandbox creations until this transaction ends.

    A no-op write: PostgreSQL takes the org row's lock, SQLite the database's
    write lock (the first statement of the transaction is a write, so there is
    no older snapshot to conflict with). Counting and inserting afterwards is
    then safe from a concurrent create overshooting the quota.
    """
    session.execute(
        update(Organization).where(Organization.id == org_id).values(plan=Organization.plan)
    )


def lock_node(session: Session, node: str) -> None:
    """Serialise sandbox creations on ``node`` until this transaction ends.

    PostgreSQL: a transaction advisory lock keyed by schema and node. SQLite
    needs none: ``lock_org`` has already taken the database's write lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    schema = session.scalar(text("SELECT current_schema()"))
    digest = hashlib.sha256(f"runtools-sandbox-node:{schema}:{node}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def memory_promised(session: Session, node: str, live: Collection[str]) -> int:
    """MiB of memory the live sandboxes on ``node`` may use, summed."""
    query = select(func.coalesce(func.sum(Sandbox.memory_mib), 0)).where(
        Sandbox.node == node, Sandbox.status.in_(live)
    )
    return int(session.scalar(query) or 0)


def count_live(session: Session, org_id: str, live: Collection[str]) -> int:
    query = select(func.count()).where(Sandbox.org_id == org_id, Sandbox.status.in_(live))
    return int(session.scalar(query) or 0)


def find(session: Session, org_id: str, ref: str) -> Sandbox | None:
    """By id, else by name: the sandbox not destroyed, else the newest destroyed one."""
    row = session.get(Sandbox, ref)
    if row is not None and row.org_id == org_id:
        return row
    query = (
        select(Sandbox)
        .where(Sandbox.org_id == org_id, Sandbox.name == ref)
        .order_by((Sandbox.status == "destroyed").asc(), Sandbox.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def named_anywhere(session: Session, ref: str) -> list[Sandbox]:
    """Every organization's sandbox with this id, or this name and not destroyed."""
    query = select(Sandbox).where(
        or_(Sandbox.id == ref, and_(Sandbox.name == ref, Sandbox.status != "destroyed"))
    )
    return list(session.scalars(query))


def get(session: Session, sandbox_id: str) -> Sandbox | None:
    return session.get(Sandbox, sandbox_id)


def get_one(session: Session, sandbox_id: str) -> Sandbox:
    """The record of a sandbox known to exist (records are never deleted once it ran)."""
    return session.get_one(Sandbox, sandbox_id)


def status_of(session: Session, sandbox_id: str) -> str:
    """The status as stored now, read again (not the one a loaded row remembers)."""
    return session.execute(select(Sandbox.status).where(Sandbox.id == sandbox_id)).scalar_one()


def insert(
    session: Session,
    *,
    sandbox_id: str,
    org_id: str,
    owner_user_id: str,
    name: str | None,
    template: str,
    status: str,
    tags: list[str],
    env_keys: list[str],
    project_id: str | None,
    idle_timeout: int | None,
    vcpus: float,
    memory_mib: int,
    disk_mib: int,
    node: str,
    now: datetime,
    ssh_key_ids: list[str] | None = None,
) -> Sandbox:
    """Record a new sandbox and its tags; ``NameTaken`` if its name is in use."""
    row = Sandbox(
        id=sandbox_id,
        org_id=org_id,
        owner_user_id=owner_user_id,
        name=name,
        template=template,
        status=status,
        status_message=None,
        tags=list(tags),
        env_keys=list(env_keys),
        ssh_key_ids=list(ssh_key_ids or []),
        project_id=project_id,
        idle_timeout=idle_timeout,
        vcpus=vcpus,
        memory_mib=memory_mib,
        disk_mib=disk_mib,
        node=node,
        last_activity_at=now,
        created_at=now,
        updated_at=now,
        destroyed_at=None,
    )
    try:
        session.add(row)
        session.flush()
        replace_tags(session, row, tags)
        session.flush()
    except IntegrityError as exc:
        raise NameTaken(name) from exc
    return row


def remove(session: Session, sandbox_id: str) -> None:
    """Forget a sandbox that never ran (the driver refused what it was asked for)."""
    session.execute(delete(Sandbox).where(Sandbox.id == sandbox_id))


def touch(session: Session, sandbox: Sandbox, now: datetime) -> None:
    """The sandbox was used now: its idle time starts again."""
    sandbox.last_activity_at = now


def replace_tags(session: Session, sandbox: Sandbox, tags: Iterable[str]) -> None:
    session.execute(delete(SandboxTag).where(SandboxTag.sandbox_id == sandbox.id))
    session.add_all(SandboxTag(sandbox_id=sandbox.id, tag=tag) for tag in tags)


def transition(
    session: Session,
    sandbox_id: str,
    *,
    allowed_from: Collection[str],
    to: str,
    now: datetime,
    message: str | None = None,
    touch: bool = False,
) -> bool:
    """Move to ``to`` only if the current status is one of ``allowed_from``.

    A conditional update, so two nodes racing for one sandbox cannot both win.
    """
    values: dict[str, object] = {"status": to, "updated_at": now, "status_message": message}
    if to == "destroyed":
        values["destroyed_at"] = now
    if touch:
        values["last_activity_at"] = now
    result = session.execute(
        update(Sandbox)
        .where(Sandbox.id == sandbox_id, Sandbox.status.in_(list(allowed_from)))
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


def count_of_template(
    session: Session, node: str, templates: Collection[str], statuses: Collection[str]
) -> int:
    """Sandboxes on ``node`` in ``statuses`` started from one of ``templates``."""
    query = select(func.count(Sandbox.id)).where(
        Sandbox.node == node,
        Sandbox.template.in_(list(templates)),
        Sandbox.status.in_(list(statuses)),
    )
    return int(session.scalar(query) or 0)


def on_node(session: Session, node: str, statuses: Collection[str]) -> list[Sandbox]:
    query = select(Sandbox).where(Sandbox.node == node, Sandbox.status.in_(list(statuses)))
    return list(session.scalars(query))


def search(
    session: Session,
    org_id: str,
    *,
    owner_user_id: str | None,
    statuses: Collection[str],
    tags: Collection[str],
    template: str | None,
    limit: int,
    cursor: str | None,
    project_id: str | None = None,
) -> Page[Sandbox]:
    query = select(Sandbox).where(Sandbox.org_id == org_id)
    if owner_user_id is not None:
        query = query.where(Sandbox.owner_user_id == owner_user_id)
    if project_id is not None:
        query = query.where(Sandbox.project_id == project_id)
    if statuses:
        query = query.where(Sandbox.status.in_(list(statuses)))
    if template is not None:
        query = query.where(Sandbox.template == template)
    for tag in tags:
        tagged = select(SandboxTag.sandbox_id).where(SandboxTag.tag == tag)
        query = query.where(Sandbox.id.in_(tagged))
    if cursor is not None:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Sandbox.created_at < created,
                and_(Sandbox.created_at == created, Sandbox.id < last_id),
            )
        )
    query = query.order_by(Sandbox.created_at.desc(), Sandbox.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(rows[-1]))
    return Page(rows, None)


def encode_cursor(row: Sandbox) -> str:
    raw = f"{as_utc(row.created_at).isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        created, last_id = raw.split("|", 1)
        when = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidRequest(_BAD_CURSOR) from exc
    if when.tzinfo is None or not last_id.startswith("sandbox-"):
        raise InvalidRequest(_BAD_CURSOR)
    return when, last_id
