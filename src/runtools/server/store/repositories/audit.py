"""The audit log as stored: append-only events.

Changes (key created, rotated, revoked…) are recorded in the same
transaction as the change itself (``record``), so one never exists without
the other. Authentication and authorization failures are queued and written
in batches by ``AuditWriter``: a flood of bad credentials costs the database
one insert per batch, not one per request, and a full queue drops (and
counts) rather than growing without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from runtools.server.domain.audit import AuditRecord
from runtools.server.domain.clock import Clock
from runtools.server.domain.errors import ServiceUnavailable
from runtools.server.domain.ids import new_id
from runtools.server.store.database import Database
from runtools.server.store.models import AuditEvent
from runtools.server.store.pagination import Page, paginate

logger = logging.getLogger("runtools.audit")


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
        details=event.details,
        created_at=now,
    )


def record(session: Session, event: AuditRecord, now: datetime) -> None:
    """Add an event to the caller's transaction."""
    session.add(row_of(event, now))


def list_events(
    session: Session,
    org_id: str,
    *,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if since:
        query = query.where(AuditEvent.created_at >= since)
    if until:
        query = query.where(AuditEvent.created_at < until)
    return paginate(session, query, AuditEvent.id, limit=limit, cursor=cursor)


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
                    session.add_all(rows)
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
