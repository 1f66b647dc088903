"""Reading the audit log: an organization's events, never another's."""

from __future__ import annotations

from datetime import datetime

from runtools import _models as sdk
from runtools.server.domain.clock import as_utc
from runtools.server.domain.wire import sent_shape
from runtools.server.store.database import Database
from runtools.server.store.models import AuditEvent
from runtools.server.store.pagination import Page
from runtools.server.store.repositories.audit import list_events


@sent_shape
class AuditEventOut(sdk.AuditLogEntry):
    # An event as an admin of its organization reads it: the SDK's
    # ``AuditLogEntry``, every field required.

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            action=event.action,
            outcome=event.outcome,
            reason=event.reason,
            actor_type=event.actor_type,
            actor_id=event.actor_id,
            org_id=event.org_id,
            target_type=event.target_type,
            target_id=event.target_id,
            ip=event.ip,
            user_agent=event.user_agent,
            request_id=event.request_id,
            details=event.details,
            created_at=as_utc(event.created_at),
        )


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
        actor: str | None = None,
    ) -> Page[AuditEventOut]:
        with self._database.session() as session:
            page = list_events(
                session,
                org_id,
                action=action,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
                actor=actor,
            )
            return Page([AuditEventOut.of(event) for event in page.items], page.next_cursor)
