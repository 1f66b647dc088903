"""Links from an external OIDC issuer's subjects and organizations to local ones.

Which local user or organization a first-seen subject gets is the issuer's
rule (``authn/external.py``); here are only the links, read and added.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.domain.errors import Conflict
from runtools.server.domain.ids import new_id
from runtools.server.store.models import (
    ExternalIdentity,
    ExternalOrganization,
    Organization,
    User,
)

__all__ = ["link_organization", "link_user", "linked_organization", "linked_user"]


def linked_user(session: Session, issuer: str, subject: str) -> User | None:
    """The local user the issuer's ``subject`` was linked to, if it was."""
    link = session.scalar(
        select(ExternalIdentity).where(
            ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject
        )
    )
    return session.get_one(User, link.user_id) if link is not None else None


def link_user(session: Session, issuer: str, subject: str, user: User, now: datetime) -> None:
    session.add(
        ExternalIdentity(
            id=new_id("xid"), issuer=issuer, subject=subject, user_id=user.id, created_at=now
        )
    )
    _flush_unique(session, f"{issuer} subject {subject!r} was linked meanwhile")


def linked_organization(session: Session, issuer: str, external_id: str) -> Organization | None:
    """The local organization the issuer's organization ``external_id`` was linked to."""
    link = session.scalar(
        select(ExternalOrganization).where(
            ExternalOrganization.issuer == issuer,
            ExternalOrganization.external_id == external_id,
        )
    )
    return session.get_one(Organization, link.org_id) if link is not None else None


def link_organization(
    session: Session, issuer: str, external_id: str, org: Organization, now: datetime
) -> None:
    session.add(
        ExternalOrganization(
            id=new_id("xorg"), issuer=issuer, external_id=external_id, org_id=org.id, created_at=now
        )
    )
    _flush_unique(session, f"{issuer} organization {external_id!r} was linked meanwhile")


def _flush_unique(session: Session, message: str) -> None:
    # Two first requests of one subject can both find no link; the unique
    # constraint decides, and the loser's transaction is rolled back.
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(message) from exc
