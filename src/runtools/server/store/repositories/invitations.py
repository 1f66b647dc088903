"""Invitations as stored: added, listed, found by token digest, and claimed once.

Tokens arrive here already hashed. Who may invite, and whether a token may
be accepted, is the invitation service's; ``claim`` only makes sure one
caller, once, turns a pending invitation into an accepted one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from runtools.server.store.models import Invitation
from runtools.server.store.pagination import Page, paginate

__all__ = ["add", "by_token_hash", "claim", "find", "page_of_org", "pending_for"]


def add(session: Session, invitation: Invitation) -> Invitation:
    session.add(invitation)
    session.flush()
    return invitation


def find(session: Session, invitation_id: str) -> Invitation | None:
    return session.get(Invitation, invitation_id)


def by_token_hash(session: Session, token_hash: str) -> Invitation | None:
    return session.scalar(select(Invitation).where(Invitation.token_hash == token_hash))


def page_of_org(
    session: Session, org_id: str, *, limit: int, cursor: str | None
) -> Page[Invitation]:
    query = select(Invitation).where(Invitation.org_id == org_id)
    return paginate(session, query, Invitation.id, limit=limit, cursor=cursor)


def pending_for(session: Session, org_id: str, email: str, now: datetime) -> Invitation | None:
    """The organization's invitation for ``email`` that could still be accepted, if any."""
    return session.scalar(
        select(Invitation).where(
            Invitation.org_id == org_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )


def claim(session: Session, invitation_id: str, user_id: str, now: datetime) -> bool:
    """Mark the invitation accepted by ``user_id``, only if it is still pending.

    True for exactly one of concurrent callers (the update's row lock decides).
    """
    claimed = cast(
        "CursorResult[Any]",
        session.execute(
            update(Invitation)
            .where(
                Invitation.id == invitation_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
            .values(accepted_at=now, accepted_by_user_id=user_id)
            # Judged by the database alone (SQLite hands back naive times to compare).
            .execution_options(synchronize_session="fetch")
        ),
    ).rowcount
    return bool(claimed == 1)
