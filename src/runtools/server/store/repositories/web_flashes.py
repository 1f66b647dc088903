"""Dashboard flashes as stored (``web_flashes``): sealed rows, taken once.

No cryptography here: the caller seals and opens. ``take`` deletes the row
with a conditional delete, so of two requests racing on one reference only
one gets it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from runtools.server.store.models import WebFlash


def put(
    session: Session,
    *,
    flash_id: str,
    session_id: str,
    sealed: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store a flash (for the caller to commit), dropping every expired one first."""
    session.execute(delete(WebFlash).where(WebFlash.expires_at <= now))
    session.add(
        WebFlash(
            id=flash_id, session_id=session_id, sealed=sealed, created_at=now, expires_at=expires_at
        )
    )


def take(session: Session, flash_id: str, session_id: str, now: datetime) -> str | None:
    """The sealed flash of this session under ``flash_id``, deleted; None if gone or expired."""
    sealed = session.scalar(
        select(WebFlash.sealed).where(
            WebFlash.id == flash_id, WebFlash.session_id == session_id, WebFlash.expires_at > now
        )
    )
    if sealed is None:
        return None
    taken = cast(
        "CursorResult[Any]", session.execute(delete(WebFlash).where(WebFlash.id == flash_id))
    ).rowcount
    return sealed if taken == 1 else None
