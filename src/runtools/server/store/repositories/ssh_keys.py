"""SSH keys: the queries, never who may run them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.domain.errors import Conflict
from runtools.server.domain.ids import new_id
from runtools.server.domain.ssh_keys import PublicKey
from runtools.server.store.models import SshKey
from runtools.server.store.pagination import Page, paginate

ID_PREFIX = "sshk"


def create(
    session: Session,
    *,
    org_id: str,
    owner_user_id: str,
    name: str,
    key: PublicKey,
    now: datetime,
) -> SshKey:
    if by_fingerprint(session, org_id, key.fingerprint) is not None:
        raise _duplicate(key.fingerprint)
    row = SshKey(
        id=new_id(ID_PREFIX),
        org_id=org_id,
        owner_user_id=owner_user_id,
        name=name,
        key_type=key.key_type,
        public_key=key.openssh,
        fingerprint=key.fingerprint,
        comment=key.comment,
        created_at=now,
        last_used_at=None,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        # Two concurrent registrations can both pass the check; the constraint decides.
        session.rollback()
        raise _duplicate(key.fingerprint) from exc
    return row


def find(session: Session, org_id: str, key_id: str) -> SshKey | None:
    """The organization's key with this id; None for another organization's."""
    row = session.get(SshKey, key_id)
    return row if row is not None and row.org_id == org_id else None


def by_fingerprint(session: Session, org_id: str, fingerprint: str) -> SshKey | None:
    return session.scalars(
        select(SshKey).where(SshKey.org_id == org_id, SshKey.fingerprint == fingerprint)
    ).first()


def with_fingerprint(session: Session, fingerprint: str) -> list[SshKey]:
    """Every organization's registration of the key with this fingerprint."""
    return list(session.scalars(select(SshKey).where(SshKey.fingerprint == fingerprint)))


def list_page(
    session: Session, org_id: str, *, owner_user_id: str | None, limit: int, cursor: str | None
) -> Page[SshKey]:
    """The organization's keys (only ``owner_user_id``'s when given), newest first."""
    query = select(SshKey).where(SshKey.org_id == org_id)
    if owner_user_id is not None:
        query = query.where(SshKey.owner_user_id == owner_user_id)
    return paginate(session, query, SshKey.id, limit=limit, cursor=cursor)


def count_of_owner(session: Session, org_id: str, owner_user_id: str) -> int:
    query = select(func.count()).where(
        SshKey.org_id == org_id, SshKey.owner_user_id == owner_user_id
    )
    return int(session.scalar(query) or 0)


def ids_of_org(session: Session, org_id: str, ids: list[str]) -> set[str]:
    """Which of these ids are keys registered with the organization."""
    if not ids:
        return set()
    query = select(SshKey.id).where(SshKey.org_id == org_id, SshKey.id.in_(ids))
    return set(session.scalars(query))


def delete(session: Session, row: SshKey) -> None:
    session.delete(row)
    session.flush()


def note_use(session: Session, key_id: str, used_at: datetime) -> None:
    """Move the key's ``last_used_at`` forward to ``used_at``, never back."""
    session.execute(
        update(SshKey)
        .where(SshKey.id == key_id)
        .where(or_(SshKey.last_used_at.is_(None), SshKey.last_used_at < used_at))
        .values(last_used_at=used_at)
    )


def _duplicate(fingerprint: str) -> Conflict:
    return Conflict(f"The key {fingerprint} is already registered with this organization")
