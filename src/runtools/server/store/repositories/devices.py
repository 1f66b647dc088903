"""Device authorizations as stored (``device_grants``): created, found by either code.

Codes arrive here already hashed (the device code) or normalized (the user
code). What a grant may become, and who may approve it, is the device
service's; nothing here checks a status beyond what a lookup asks for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from runtools.server.domain.ids import new_id
from runtools.server.store.models import DeviceGrant

__all__ = ["by_device_code", "create", "pending_with_user_code", "user_code_in_use"]


def create(
    session: Session,
    *,
    device_code_hash: str,
    user_code: str,
    client_id: str,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    expires_at: datetime,
    interval: int,
) -> DeviceGrant:
    """A new pending grant, added to the caller's transaction."""
    grant = DeviceGrant(
        id=new_id("dev"),
        device_code_hash=device_code_hash,
        user_code=user_code,
        client_id=client_id,
        ip=ip,
        user_agent=user_agent,
        created_at=now,
        expires_at=expires_at,
        interval=interval,
        last_polled_at=None,
        status="pending",
        user_id=None,
        org_id=None,
        session_id=None,
    )
    session.add(grant)
    return grant


def user_code_in_use(session: Session, user_code: str, now: datetime) -> bool:
    """Whether a grant not yet expired at ``now`` shows this user code."""
    live = session.scalar(
        select(DeviceGrant.id).where(
            DeviceGrant.user_code == user_code, DeviceGrant.expires_at > now
        )
    )
    return live is not None


def by_device_code(session: Session, device_code_hash: str) -> DeviceGrant | None:
    """The grant a device polls with, whatever its status or age."""
    return session.scalar(
        select(DeviceGrant).where(DeviceGrant.device_code_hash == device_code_hash)
    )


def pending_with_user_code(session: Session, user_code: str, now: datetime) -> DeviceGrant | None:
    """The grant waiting for a decision that shows this user code, if it has not expired."""
    return session.scalar(
        select(DeviceGrant).where(
            DeviceGrant.user_code == user_code,
            DeviceGrant.status == "pending",
            DeviceGrant.expires_at > now,
        )
    )
