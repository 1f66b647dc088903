"""API keys as stored: added, found, listed a page at a time, their last use noted.

Who may see or change a key is the service's (``services/api_keys.py``);
reading a key for verification, with its owner and organization, is
``credentials.load_key_record``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from runtools.server.store.models import ApiKey
from runtools.server.store.pagination import Page, paginate

__all__ = ["add", "find", "list_page", "note_uses"]


def add(session: Session, key: ApiKey) -> ApiKey:
    """Add a new key to the caller's transaction (flushed, so it has its row)."""
    session.add(key)
    session.flush()
    return key


def find(session: Session, key_id: str) -> ApiKey | None:
    """The key with this id, in any organization: the caller decides who may see it."""
    return session.get(ApiKey, key_id)


def list_page(
    session: Session, org_id: str, *, owner_user_id: str | None, limit: int, cursor: str | None
) -> Page[ApiKey]:
    """The organization's keys (only ``owner_user_id``'s, when given), newest first."""
    query = select(ApiKey).where(ApiKey.org_id == org_id)
    if owner_user_id is not None:
        query = query.where(ApiKey.owner_user_id == owner_user_id)
    return paginate(session, query, ApiKey.id, limit=limit, cursor=cursor)


def note_uses(session: Session, uses: Mapping[str, datetime]) -> None:
    """Move each key's ``last_used_at`` forward to its time in ``uses``, never back."""
    for key_id, used_at in uses.items():
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < used_at))
            .values(last_used_at=used_at)
        )
