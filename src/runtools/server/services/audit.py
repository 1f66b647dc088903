"""The audit log: append-only security events.

Changes (key created, rotated, revoked…) are recorded in the same
transaction as the change itself, so one never exists without the other.
Authentication and authorization failures are queued and written in
batches by ``AuditWriter``: a flood of bad credentials costs the database
one insert per batch, not one per request, and a full queue drops (and
counts) rather than growing without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from runtools.server.clock import Clock
from runtools.server.errors import ServiceUnavailable
from runtools.server.ids import new_id
from runtools.server.store.database import Database
from runtools.server.store.models import AuditEvent
from runtools.server.store.pagination import Page, paginate

logger = logging.getLogger("runtools.audit")


@dataclass(frozen=True)
class RequestContext:
    """Where a call came from: what every audit event records about it."""

    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass
class AuditRecord:
    action: str
    outcome: str
    org_id: str | None
    actor_type: str
    actor_id: str | None
    context: RequestContext
    target_type: str | None = None
    target_id: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_row(self, now: datetime) -> AuditEvent:
        return AuditEvent(
            id=new_id("evt"),
            org_id=self.org_id,
            action=self.action,
            outcome=self.outcome,
            reason=self.reason,
            actor_type=self.actor_type,
            actor_id=self.actor_id,
            target_type=self.target_type,
            target_id=self.target_id,
            ip=self.context.ip,
            user_agent=(self.context.user_agent or "")[:256] or None,
            request_id=self.context.request_id,
            details=self.details,
            created_at=now,
        )


def record(session: Session, event: AuditRecord, now: datetime) -> None:
    """Add an event to the caller's transaction."""
    session.add(event.to_row(now))


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
            self._queue.put_nowait(event.to_row(self._clock.now()))
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


class AuditLogService:
    """Reading the log: an organization's events, never another's."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def search(
        self,
        org_id: str,
        *,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page[AuditEvent]:
        with self._database.session() as session:
            return list_events(
                session, org_id, action=action, since=since, until=until, limit=limit, cursor=cursor
            )
