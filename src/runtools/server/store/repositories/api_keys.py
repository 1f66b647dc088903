"""API keys as stored: added, found, listed a page at a time, their last use noted.

Who may see or change a key is the service's (``services/api_keys.py``);
reading a key for verification, with its owner and organization, is
``credentials.load_key_record``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.store.models import ApiKey, ApiKeyUsage, Organization
from runtools.server.store.pagination import Page, paginate

__all__ = ["add", "find", "find_by_hash", "list_page", "note_uses", "revoke_if_live"]


def add(session: Session, key: ApiKey) -> ApiKey:
    """Add a new key to the caller's transaction (flushed, so it has its row)."""
    session.add(key)
    session.flush()
    return key


def find(session: Session, key_id: str) -> ApiKey | None:
    """The key with this id, in any organization: the caller decides who may see it."""
    return session.get(ApiKey, key_id)


def find_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    """The key whose secret has this digest, in any organization, or None."""
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def revoke_if_live(session: Session, key_id: str, now: datetime, reason: str) -> bool:
    """Revoke the key at ``now`` for ``reason`` unless it has already ended (revoked or
    expired); a rotation's grace period ends here too. True if this call revoked it.

    One conditional UPDATE: of two callers revoking one key at once, exactly one wins.
    """
    revoked = cast(
        "CursorResult[Any]",
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at > now))
            .where(or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    return bool(revoked == 1)


def unused_for_too_long(session: Session, now: datetime) -> list[ApiKey]:
    """Live keys of organizations with ``revoke_unused_after_days``, unused for longer.

    Unused means since the last use noted (``last_used_at``), or since creation for
    a key never used. Honeytokens are never "used" and are not included.
    """
    found: list[ApiKey] = []
    for org_id, days in session.execute(
        select(Organization.id, Organization.revoke_unused_after_days).where(
            Organization.revoke_unused_after_days.is_not(None)
        )
    ).all():
        cutoff = now - timedelta(days=days)
        found += session.scalars(
            select(ApiKey)
            .where(ApiKey.org_id == org_id, ApiKey.is_canary.is_(False))
            .where(or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at > now))
            .where(or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
            .where(func.coalesce(ApiKey.last_used_at, ApiKey.created_at) < cutoff)
            .order_by(ApiKey.id)
        )
    return found


def list_page(
    session: Session,
    org_id: str,
    *,
    owner_user_id: str | None,
    limit: int,
    cursor: str | None,
    project_id: str | None = None,
) -> Page[ApiKey]:
    """The organization's keys (only ``owner_user_id``'s, of ``project_id``, when given),
    newest first."""
    query = select(ApiKey).where(ApiKey.org_id == org_id)
    if owner_user_id is not None:
        query = query.where(ApiKey.owner_user_id == owner_user_id)
    if project_id is not None:
        query = query.where(ApiKey.project_id == project_id)
    return paginate(session, query, ApiKey.id, limit=limit, cursor=cursor)


#: A key's counts for a day, in the order of ``ApiKeyUsage``'s columns.
UsageCounts = tuple[int, int, int]  # requests, invalid, rate_limited


def add_usage(
    session: Session,
    day: date,
    counts: Mapping[str, UsageCounts],
    addresses: Mapping[str, str] | None = None,
) -> None:
    """Add each key's counts to its row for ``day`` (made if missing, whichever node is first).

    ``addresses``: the latest address each key was seen from, kept as the day's last.
    """
    addresses = addresses or {}
    for key_id in counts.keys() | addresses.keys():
        requests, invalid, limited = counts.get(key_id, (0, 0, 0))
        address = addresses.get(key_id)
        added: dict[str, Any] = {
            "requests": ApiKeyUsage.requests + requests,
            "invalid": ApiKeyUsage.invalid + invalid,
            "rate_limited": ApiKeyUsage.rate_limited + limited,
        }
        if address is not None:
            added["last_address"] = address
        mine = (ApiKeyUsage.key_id == key_id, ApiKeyUsage.day == day)
        if _rows(session.execute(update(ApiKeyUsage).where(*mine).values(**added))):
            continue
        try:
            with session.begin_nested():
                session.add(
                    ApiKeyUsage(
                        key_id=key_id,
                        day=day,
                        requests=requests,
                        invalid=invalid,
                        rate_limited=limited,
                        last_address=address,
                    )
                )
        except IntegrityError:  # another node made the row meanwhile, or the key is gone
            if find(session, key_id) is not None:
                session.execute(update(ApiKeyUsage).where(*mine).values(**added))


def usage_of(session: Session, key_id: str, since: date) -> list[ApiKeyUsage]:
    """The key's days from ``since`` on, oldest first."""
    return list(
        session.scalars(
            select(ApiKeyUsage)
            .where(ApiKeyUsage.key_id == key_id, ApiKeyUsage.day >= since)
            .order_by(ApiKeyUsage.day)
        )
    )


def _rows(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount)


def note_uses(session: Session, uses: Mapping[str, datetime]) -> None:
    """Move each key's ``last_used_at`` forward to its time in ``uses``, never back."""
    for key_id, used_at in uses.items():
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < used_at))
            .values(last_used_at=used_at)
        )
