"""Queries over failed guesses (``auth_failures``): counted, added, forgotten."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from runtools.server.store.models import AuthFailure

__all__ = ["add", "forget", "recent"]


def recent(session: Session, subject: str, since: float) -> tuple[int, float | None]:
    """How many failures of ``subject`` after ``since``, and when the oldest of them was."""
    count, oldest = session.execute(
        select(func.count(), func.min(AuthFailure.failed_at)).where(
            AuthFailure.subject == subject, AuthFailure.failed_at > since
        )
    ).one()
    return int(count or 0), oldest


def add(session: Session, throttle: str, subject: str, at: float, *, forget_before: float) -> None:
    """Record a failure; the throttle's failures older than ``forget_before`` go."""
    session.execute(
        delete(AuthFailure).where(
            AuthFailure.throttle == throttle, AuthFailure.failed_at <= forget_before
        )
    )
    session.add(AuthFailure(throttle=throttle, subject=subject, failed_at=at))


def forget(session: Session, subject: str) -> None:
    session.execute(delete(AuthFailure).where(AuthFailure.subject == subject))
