"""The audit log as stored: append-only events, in one hash chain.

Changes (key created, rotated, revoked…) are recorded in the same
transaction as the change itself (``record``), so one never exists without
the other. Authentication and authorization failures are queued and written
in batches by ``AuditWriter``: a flood of bad credentials costs the database
one insert per batch, not one per request, and a full queue drops (and
counts) rather than growing without bound.

Every event is chained (``domain/audit_chain.py``) as its transaction
commits: ``append`` takes the next places after the one-row chain head in
a single ``UPDATE … RETURNING``, which locks the head until the commit (a
row lock on PostgreSQL, the write lock on SQLite), so concurrent writers on
any number of nodes queue there and can never fork the chain; the unique
``seq`` would refuse a fork even so. Recorded events wait in the session
until its commit, so the head is the last lock any transaction takes and
is held only while its events are written.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import distinct, event, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.audit_chain import event_hash, fields_of, normalized_details
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import ServiceUnavailable
from runtools.server.domain.ids import new_id
from runtools.server.store.database import Database
from runtools.server.store.models import AuditChainHead, AuditEvent
from runtools.server.store.pagination import Page, paginate

logger = logging.getLogger("runtools.audit")

#: Where a session keeps the events recorded in it until it commits.
_PENDING = "runtools.audit.pending"
#: The chain head's one row.
HEAD_ID = 1


def row_of(event: AuditRecord, now: datetime) -> AuditEvent:
    return AuditEvent(
        id=new_id("evt"),
        org_id=event.org_id,
        action=event.action,
        outcome=event.outcome,
        reason=event.reason,
        actor_type=event.actor_type,
        actor_id=event.actor_id,
        target_type=event.target_type,
        target_id=event.target_id,
        ip=event.context.ip,
        user_agent=(event.context.user_agent or "")[:256] or None,
        request_id=event.context.request_id,
        details=normalized_details(event.details),
        created_at=now,
    )


def record(session: Session, event: AuditRecord, now: datetime) -> None:
    """Add an event to the caller's transaction; it is chained and written as that commits."""
    session.info.setdefault(_PENDING, []).append(row_of(event, now))


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    rows: list[AuditEvent] | None = session.info.pop(_PENDING, None)
    if rows:
        append(session, rows)


def append(session: Session, rows: list[AuditEvent]) -> None:
    """Chain ``rows`` after the head and add them to the session (the head stays locked
    until the transaction ends)."""
    taken = session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(seq=AuditChainHead.seq + len(rows))
        .returning(AuditChainHead.seq, AuditChainHead.hash),
        execution_options={"synchronize_session": False},
    ).one()
    seq, previous = taken.seq - len(rows), taken.hash
    for row in rows:
        seq += 1
        row.seq, row.prev_hash = seq, previous
        row.hash = previous = event_hash(fields_of(row, seq=seq, prev_hash=previous))
    session.execute(
        update(AuditChainHead).where(AuditChainHead.id == HEAD_ID).values(hash=previous),
        execution_options={"synchronize_session": False},
    )
    session.add_all(rows)


def chain_head(session: Session) -> AuditChainHead | None:
    return session.get(AuditChainHead, HEAD_ID)


def chained_after(session: Session, seq: int, *, through: int, limit: int) -> list[AuditEvent]:
    """Up to ``limit`` events with ``seq`` in (``seq``, ``through``], in chain order."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq > seq, AuditEvent.seq <= through)
            .order_by(AuditEvent.seq)
            .limit(limit)
        )
    )


def first_unchained(session: Session) -> AuditEvent | None:
    """An event stored outside the chain (no ``seq``): written around the service."""
    return session.scalars(select(AuditEvent).where(AuditEvent.seq.is_(None)).limit(1)).first()


def event_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def list_events(
    session: Session,
    org_id: str,
    *,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    target: tuple[str, str] | None = None,
    actor: str | None = None,
) -> Page[AuditEvent]:
    """The organization's events, newest first; only those about ``target`` (its type
    and id), or by ``actor`` (a credential's or user's id), when given."""
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if actor is not None:
        query = query.where(AuditEvent.actor_id == actor)
    if target is not None:
        query = query.where(AuditEvent.target_type == target[0], AuditEvent.target_id == target[1])
    if action:
        query = query.where(AuditEvent.action == action)
    if since:
        query = query.where(AuditEvent.created_at >= since)
    if until:
        query = query.where(AuditEvent.created_at < until)
    return paginate(session, query, AuditEvent.id, limit=limit, cursor=cursor)


@dataclass
class ActorActivity:
    """What one actor did since a time: its audited acts, summed."""

    by_action: list[tuple[str, int]] = field(default_factory=list)  # most frequent first
    refusals: int = 0
    targets: int = 0
    addresses: list[str] = field(default_factory=list)  # most recent first
    last_at: datetime | None = None


def activity_of(
    session: Session, org_id: str, actor_id: str, since: datetime, *, addresses: int = 10
) -> ActorActivity:
    """The acts of ``actor_id`` in ``org_id`` at or after ``since``."""
    mine = (
        AuditEvent.org_id == org_id,
        AuditEvent.actor_id == actor_id,
        AuditEvent.created_at >= since,
    )
    count = func.count().label("n")
    by_action = session.execute(
        select(AuditEvent.action, count)
        .where(*mine)
        .group_by(AuditEvent.action)
        .order_by(count.desc(), AuditEvent.action)
    ).all()
    if not by_action:
        return ActorActivity()
    refusals, targets, last_at = session.execute(
        select(
            func.count().filter(AuditEvent.outcome == "failure"),
            func.count(distinct(AuditEvent.target_id)),
            func.max(AuditEvent.created_at),
        ).where(*mine)
    ).one()
    latest = func.max(AuditEvent.created_at).label("latest")
    ips = session.execute(
        select(AuditEvent.ip, latest)
        .where(*mine, AuditEvent.ip.is_not(None))
        .group_by(AuditEvent.ip)
        .order_by(latest.desc())
        .limit(addresses)
    ).all()
    return ActorActivity(
        by_action=[(action, n) for action, n in by_action],
        refusals=refusals,
        targets=targets,
        addresses=[ip for ip, _ in ips],
        last_at=last_at,
    )


class AuditWriter:
    """Batches failure events off the request path."""

    def __init__(self, database: Database, clock: Clock, *, capacity: int = 10_000) -> None:
        self._database = database
        self._clock = clock
        self._queue: queue.Queue[AuditEvent] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self.dropped = 0
        # Called with each queued record (security log lines and metrics).
        self.observers: list[Callable[[AuditRecord], None]] = []

    def enqueue(self, event: AuditRecord) -> None:
        for observe in self.observers:
            observe(event)
        try:
            self._queue.put_nowait(row_of(event, self._clock.now()))
        except queue.Full:
            self.dropped += 1

    def flush(self) -> int:
        """Write everything queued; returns how many events were written."""
        with self._lock:
            rows: list[AuditEvent] = []
            while True:
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not rows:
                return 0
            try:
                with self._database.session() as session:
                    append(session, rows)
                    session.commit()
            except (SQLAlchemyError, ServiceUnavailable) as exc:
                # An outage is announced once by the database; each retry is only a detail.
                log = logger.debug if isinstance(exc, ServiceUnavailable) else logger.warning
                log(
                    "audit batch of %d events could not be written; kept for the next try",
                    len(rows),
                )
                for row in rows:
                    try:
                        self._queue.put_nowait(row)
                    except queue.Full:
                        self.dropped += 1
                return 0
            return len(rows)
