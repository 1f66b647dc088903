"""The access-token signing keys as stored: every one, added, the active ones retired.

Generating keys and deciding which still verify is the keyring's
(``authn/signing.py``); here are only the rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from runtools.server.store.models import SigningKey

__all__ = ["add", "every", "retire_active"]


def every(session: Session) -> list[SigningKey]:
    return list(session.scalars(select(SigningKey)))


def add(session: Session, key: SigningKey) -> SigningKey:
    session.add(key)
    session.flush()
    return key


def retire_active(session: Session, now: datetime) -> None:
    """Every key still signing stops signing at ``now`` (it keeps verifying)."""
    for row in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at = now
