"""Sessions and their refresh tokens as stored (``sessions``, ``refresh_tokens``).

Tokens arrive here as digests, never as issued. Whether a session is alive,
whether a used token is a racing twin or a theft, who may end a session:
those are the rules of ``services.sessions``, not of these queries.

Two writes are conditional, and they are how concurrent requests are told
apart: ``claim_refresh_token`` and ``end_if_live`` each return True to
exactly one of any number of callers racing on the same row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from runtools.server.domain.ids import new_id
from runtools.server.domain.paging import Page
from runtools.server.store.models import RefreshToken, UserSession
from runtools.server.store.pagination import paginate

__all__ = [
    "add_refresh_token",
    "claim_refresh_token",
    "create",
    "end_if_live",
    "get",
    "get_one",
    "live_of_user",
    "refresh_token",
    "unrevoked_of_user",
]


def create(
    session: Session,
    *,
    user_id: str,
    org_id: str,
    client_name: str,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    expires_at: datetime,
) -> UserSession:
    """A new live session, written (flushed) so refresh tokens can point at it."""
    row = UserSession(
        id=new_id("ses"),
        user_id=user_id,
        org_id=org_id,
        client_name=client_name,
        ip=ip,
        user_agent=user_agent,
        created_at=now,
        last_used_at=now,
        expires_at=expires_at,
        revoked_at=None,
        revoke_reason=None,
    )
    session.add(row)
    session.flush()  # the session row must exist before its refresh token
    return row


def get(session: Session, session_id: str) -> UserSession | None:
    return session.get(UserSession, session_id)


def get_one(session: Session, session_id: str) -> UserSession:
    """The session with this id; it must exist (the caller holds a token naming it)."""
    return session.get_one(UserSession, session_id)


def live_of_user(
    session: Session, user_id: str, now: datetime, *, limit: int, cursor: str | None
) -> Page[UserSession]:
    """One page of the user's sessions neither revoked nor past their absolute end."""
    query = select(UserSession).where(
        UserSession.user_id == user_id,
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
    )
    return paginate(session, query, UserSession.id, limit=limit, cursor=cursor)


def unrevoked_of_user(session: Session, user_id: str, *, except_id: str) -> list[UserSession]:
    """Every session of the user not revoked yet (expired or not), but ``except_id``."""
    return list(
        session.scalars(
            select(UserSession).where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.id != except_id,
            )
        )
    )


def unrevoked_in_org(session: Session, user_id: str, org_id: str) -> list[UserSession]:
    """Every session of the user in the organization not revoked yet."""
    return list(
        session.scalars(
            select(UserSession).where(
                UserSession.user_id == user_id,
                UserSession.org_id == org_id,
                UserSession.revoked_at.is_(None),
            )
        )
    )


def end_if_live(session: Session, session_id: str, now: datetime, reason: str) -> bool:
    """Revoke the session in the caller's transaction, only if no one has yet.

    True for exactly one of concurrent callers (the row lock of the update
    decides); the others get False and must treat the session as over.
    """
    ended = cast(
        "CursorResult[Any]",
        session.execute(
            update(UserSession)
            .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
        ),
    ).rowcount
    return bool(ended == 1)


def add_refresh_token(
    session: Session, *, session_id: str, token_hash: str, now: datetime, expires_at: datetime
) -> None:
    """A new unused refresh token of the session, written (flushed) at once."""
    session.add(
        RefreshToken(
            id=new_id("rft"),
            session_id=session_id,
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
            used_at=None,
        )
    )
    session.flush()


def refresh_token(session: Session, token_hash: str) -> RefreshToken | None:
    """The refresh token with this digest, used or not, expired or not."""
    return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


def claim_refresh_token(session: Session, token_id: str, now: datetime) -> bool:
    """Mark the token used at ``now``, only if it was unused.

    True for exactly one of concurrent callers presenting the same token;
    the others get False (the token had been used) and must roll back.
    """
    claimed = cast(
        "CursorResult[Any]",
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        ),
    ).rowcount
    return bool(claimed == 1)
