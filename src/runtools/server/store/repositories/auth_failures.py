"""Queries over counted guesses (``auth_failures``): reserved, counted, forgotten."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from runtools.server.store.models import AuthFailure

__all__ = ["add", "forget", "forget_older", "lock", "recent", "remove"]


def lock(session: Session, throttle: str, subject: str) -> None:
    """Serialise counting for one subject until this transaction ends.

    PostgreSQL: a transaction advisory lock on the subject. SQLite: the
    caller's first statement is a write (``forget_older``), which takes the
    database's write lock.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"runtools-throttle:{throttle}:{subject}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def forget_older(session: Session, throttle: str, before: float) -> None:
    """The throttle's guesses at or before ``before`` go: they left its window."""
    session.execute(
        delete(AuthFailure).where(AuthFailure.throttle == throttle, AuthFailure.failed_at <= before)
    )


def recent(session: Session, subject: str, since: float) -> tuple[int, float | None]:
    """How many guesses of ``subject`` after ``since``, and when the oldest of them was."""
    count, oldest = session.execute(
        select(func.count(), func.min(AuthFailure.failed_at)).where(
            AuthFailure.subject == subject, AuthFailure.failed_at > since
        )
    ).one()
    return int(count or 0), oldest


def add(session: Session, throttle: str, subject: str, at: float) -> int:
    """Count a guess; its id, to ``remove`` it should it turn out right."""
    row = AuthFailure(throttle=throttle, subject=subject, failed_at=at)
    session.add(row)
    session.flush()
    return row.id


def remove(session: Session, failure_id: int) -> None:
    session.execute(delete(AuthFailure).where(AuthFailure.id == failure_id))


def forget(session: Session, subject: str) -> None:
    session.execute(delete(AuthFailure).where(AuthFailure.subject == subject))
