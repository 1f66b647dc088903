"""Reading and writing idempotency records. No HTTP, no cryptography: rows only.

The caller commits; ``insert_in_flight`` alone ends the caller's transaction
when it loses (a unique-key conflict leaves nothing else to do in it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runtools.server.store.models import IdempotencyRecord

IN_FLIGHT = "in_flight"
DONE = "done"


def purge_expired(session: Session, now: datetime) -> None:
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))


def find(session: Session, lookup_hash: str) -> IdempotencyRecord | None:
    return session.get(IdempotencyRecord, lookup_hash, populate_existing=True)


def insert_in_flight(
    session: Session, lookup_hash: str, request_hash: str, now: datetime, expires_at: datetime
) -> bool:
    """Claim ``lookup_hash`` (flushed, for the caller to commit).

    False, and the caller's transaction rolled back, if someone has it.
    """
    session.add(
        IdempotencyRecord(
            lookup_hash=lookup_hash,
            request_hash=request_hash,
            state=IN_FLIGHT,
            response_status=None,
            sealed_response=None,
            created_at=now,
            expires_at=expires_at,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True


def take_over(session: Session, record: IdempotencyRecord, now: datetime) -> bool:
    """Claim an abandoned in-flight record, unless another caller just did."""
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.lookup_hash == record.lookup_hash,
                IdempotencyRecord.state == IN_FLIGHT,
                IdempotencyRecord.created_at == record.created_at,
            )
            .values(created_at=now)
        ),
    )
    return result.rowcount == 1


def finish(session: Session, lookup_hash: str, status: int, sealed: str) -> None:
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.lookup_hash == lookup_hash)
        .values(state=DONE, response_status=status, sealed_response=sealed)
    )


def remove(session: Session, lookup_hash: str) -> None:
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.lookup_hash == lookup_hash))
