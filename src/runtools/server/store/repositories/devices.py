"""Device authorizations as stored (``device_grants``): created, found by either code.

Codes arrive here already hashed (the device code) or normalized (the user
code). What a grant may become, and who may approve it, is the device
service's; nothing here checks a status beyond what a lookup asks for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from runtools.server.domain.ids import new_id
from runtools.server.store.models import DeviceGrant

__all__ = [
    "by_device_code",
    "consume_if_approved",
    "create",
    "pending_with_user_code",
    "user_code_in_use",
]


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


def consume_if_approved(session: Session, grant_id: str) -> bool:
    """Mark an approved grant consumed in the caller's transaction, only if no one has yet.

    True for exactly one of concurrent pollers (the row lock of the update
    decides); the others get False: the tokens were already issued.
    """
    consumed = cast(
        "CursorResult[Any]",
        session.execute(
            update(DeviceGrant)
            .where(DeviceGrant.id == grant_id, DeviceGrant.status == "approved")
            .values(status="consumed")
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    return bool(consumed == 1)
