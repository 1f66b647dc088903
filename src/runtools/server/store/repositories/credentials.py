"""Reading a credential's whole authorization picture (key or session) in one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from runtools.server.domain.clock import as_utc
from runtools.server.store.models import ApiKey, Membership, Organization, User, UserSession


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What verifying an API key needs, as of the moment it was read."""

    key_id: str
    key_name: str
    key_prefix: str
    scopes: tuple[str, ...]
    is_test: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    org_id: str
    org_name: str
    owner_id: str
    owner_email: str
    owner_display_name: str | None
    # None when the owner is no longer a member of the key's organization.
    owner_role: str | None
    org_plan: str = "free"
    rate_limit: int | None = None
    allow_browser: bool = False
    # Canonical CIDR strings; empty: any address.
    allowed_cidrs: tuple[str, ...] = ()
    is_canary: bool = False


def load_key_record(session: Session, key_hash: str) -> KeyRecord | None:
    row = session.execute(
        select(ApiKey, Organization, User, Membership.role)
        .join(Organization, Organization.id == ApiKey.org_id)
        .join(User, User.id == ApiKey.owner_user_id)
        .outerjoin(
            Membership,
            and_(Membership.org_id == ApiKey.org_id, Membership.user_id == ApiKey.owner_user_id),
        )
        .where(ApiKey.key_hash == key_hash)
    ).first()
    if row is None:
        return None
    key, org, user, role = row
    return KeyRecord(
        key_id=key.id,
        key_name=key.name,
        key_prefix=key.key_prefix,
        scopes=tuple(key.scopes),
        is_test=key.is_test,
        expires_at=as_utc(key.expires_at) if key.expires_at else None,
        revoked_at=as_utc(key.revoked_at) if key.revoked_at else None,
        org_id=org.id,
        org_name=org.name,
        owner_id=user.id,
        owner_email=user.email,
        owner_display_name=user.display_name,
        owner_role=role,
        org_plan=org.plan,
        rate_limit=key.rate_limit,
        allow_browser=key.allow_browser,
        allowed_cidrs=tuple(key.allowed_cidrs or ()),
        is_canary=key.is_canary,
    )


@dataclass(frozen=True, slots=True)
class SessionCredential:
    """What verifying an access token needs of its session, as of the moment it was read."""

    session_id: str
    client_name: str
    user_id: str
    org_id: str
    expires_at: datetime
    revoked_at: datetime | None
    org_name: str
    org_plan: str
    user_email: str
    user_display_name: str | None
    # None when the user is no longer a member of the session's organization.
    role: str | None


def load_session_credential(session: Session, session_id: str) -> SessionCredential | None:
    row = session.execute(
        select(UserSession, Organization, User, Membership.role)
        .join(Organization, Organization.id == UserSession.org_id)
        .join(User, User.id == UserSession.user_id)
        .outerjoin(
            Membership,
            and_(
                Membership.org_id == UserSession.org_id,
                Membership.user_id == UserSession.user_id,
            ),
        )
        .where(UserSession.id == session_id)
    ).first()
    if row is None:
        return None
    user_session, org, user, role = row
    return SessionCredential(
        session_id=user_session.id,
        client_name=user_session.client_name,
        user_id=user.id,
        org_id=org.id,
        expires_at=as_utc(user_session.expires_at),
        revoked_at=as_utc(user_session.revoked_at) if user_session.revoked_at else None,
        org_name=org.name,
        org_plan=org.plan,
        user_email=user.email,
        user_display_name=user.display_name,
        role=role,
    )
