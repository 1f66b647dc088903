"""Organizations, users and memberships: the queries, never who may run them."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import Conflict, InvalidRequest, NotFound
from runtools.server.domain.ids import new_id
from runtools.server.domain.roles import Role
from runtools.server.store.models import Membership, Organization, User
from runtools.server.store.pagination import Page, paginate
from runtools.server.store.repositories import projects

_ORG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


@dataclass(frozen=True)
class MemberView:
    org: Organization
    user: User
    role: str


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"Invalid email address: {email!r}")
    return email


def valid_org_name(name: str) -> str:
    name = name.strip()
    if not _ORG_NAME.match(name):
        raise InvalidRequest(
            "Organization names are 1-100 characters: letters, digits, space, '.', '_' or '-'"
        )
    return name


def create_org(session: Session, clock: Clock, name: str) -> Organization:
    name = valid_org_name(name)
    if session.scalar(select(Organization).where(Organization.name == name)) is not None:
        raise Conflict(f"An organization named {name!r} already exists")
    org = Organization(id=new_id("org"), name=name, plan="free", created_at=clock.now())
    session.add(org)
    _flush_unique(session, f"An organization named {name!r} already exists")
    projects.create_default(session, clock, org.id)  # never an organization without one
    return org


def rename_org(session: Session, org: Organization, name: str) -> None:
    name = valid_org_name(name)
    taken = session.scalar(
        select(Organization.id).where(Organization.name == name, Organization.id != org.id)
    )
    if taken is not None:
        raise Conflict(f"An organization named {name!r} already exists")
    org.name = name
    _flush_unique(session, f"An organization named {name!r} already exists")


def lock(session: Session, org_id: str) -> None:
    """Serialise changes to the organization's memberships until this transaction ends.

    A no-op write: PostgreSQL takes the org row's lock, SQLite the database's
    write lock (as the first statement, so there is no older snapshot to
    conflict with). Counting admins afterwards is safe from a concurrent
    demotion leaving none.
    """
    session.execute(
        update(Organization).where(Organization.id == org_id).values(plan=Organization.plan)
    )


def memberships_of_user(session: Session, user_id: str) -> list[tuple[Organization, Membership]]:
    """Every organization the user belongs to, with the membership, oldest first."""
    rows = session.execute(
        select(Organization, Membership)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Membership.id)
    )
    return [(org, m) for org, m in rows.tuples()]


def members_page(
    session: Session, org_id: str, *, limit: int, cursor: str | None
) -> Page[Membership]:
    """One page of the organization's memberships, newest first."""
    query = select(Membership).where(Membership.org_id == org_id)
    return paginate(session, query, Membership.id, limit=limit, cursor=cursor)


def count_admins(session: Session, org_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Membership.org_id == org_id, Membership.role == "admin")
        )
        or 0
    )


def remove_membership(session: Session, membership: Membership) -> None:
    session.delete(membership)
    session.flush()


def create_user(
    session: Session,
    clock: Clock,
    email: str,
    *,
    display_name: str | None = None,
    password_hash: str | None = None,
) -> User:
    email = normalize_email(email)
    if session.scalar(select(User).where(User.email == email)) is not None:
        raise Conflict(f"A user with email {email!r} already exists")
    user = User(
        id=new_id("user"),
        email=email,
        display_name=display_name,
        password_hash=password_hash,
        created_at=clock.now(),
    )
    session.add(user)
    _flush_unique(session, f"A user with email {email!r} already exists")
    return user


def add_member(
    session: Session, clock: Clock, org: Organization, user: User, role: str
) -> Membership:
    if role not in {r.value for r in Role}:
        raise InvalidRequest(f"Unknown role {role!r}: use admin or member")
    existing = session.scalar(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    )
    if existing is not None:
        raise Conflict(f"{user.email} is already a member of {org.name}")
    membership = Membership(
        id=new_id("mem"), org_id=org.id, user_id=user.id, role=role, created_at=clock.now()
    )
    session.add(membership)
    _flush_unique(session, f"{user.email} is already a member of {org.name}")
    return membership


def org_by_name(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name.strip()))
    if org is None:
        raise NotFound(f"No organization named {name!r}")
    return org


def user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"No user with email {email!r}")
    return user


def org_named(session: Session, name: str) -> Organization | None:
    """The organization with exactly this name, if there is one."""
    return session.scalar(select(Organization).where(Organization.name == name))


def organization(session: Session, org_id: str) -> Organization:
    """The organization with this id; it must exist (the caller holds a credential of it)."""
    return session.get_one(Organization, org_id)


def user(session: Session, user_id: str) -> User:
    """The user with this id; it must exist (the caller holds a reference to it)."""
    return session.get_one(User, user_id)


def users_by_id(session: Session, ids: Collection[str]) -> dict[str, User]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}


def user_with_email(session: Session, email: str) -> User | None:
    """The user whose stored (normalized) address is exactly ``email``, if any."""
    return session.scalar(select(User).where(User.email == email))


def membership(session: Session, org_id: str, user_id: str) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )


def member_ids(session: Session, org_id: str, user_ids: Collection[str]) -> set[str]:
    """Which of these users are members of the organization."""
    if not user_ids:
        return set()
    return set(
        session.scalars(
            select(Membership.user_id).where(
                Membership.org_id == org_id, Membership.user_id.in_(user_ids)
            )
        )
    )


def org_names(session: Session, org_ids: Collection[str]) -> dict[str, str]:
    """The names of these organizations, by id (ids that do not exist are left out)."""
    return {
        org_id: name
        for org_id, name in session.execute(
            select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))
        )
    }


def some_org_of(session: Session, user_id: str) -> str | None:
    """The id of one organization the user is a member of (any), or None for none."""
    return session.scalar(select(Membership.org_id).where(Membership.user_id == user_id).limit(1))


def first_membership(
    session: Session, user_id: str, org_name: str | None = None
) -> tuple[Organization, str] | None:
    """The user's earliest membership (of the organization named, if a name is given).

    The organization and the user's role in it; None when there is no such
    membership.
    """
    query = (
        select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user_id)
    )
    if org_name:
        query = query.where(Organization.name == org_name.strip())
    row = session.execute(query.order_by(Membership.created_at).limit(1)).first()
    if row is None:
        return None
    return row[0], row[1]


def role_in(session: Session, org_id: str, user_id: str) -> str | None:
    return session.scalar(
        select(Membership.role).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )


def _flush_unique(session: Session, message: str) -> None:
    # Two concurrent creators can both pass the existence check; the unique
    # constraint decides, and the loser gets the same 409.
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(message) from exc
