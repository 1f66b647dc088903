"""Reading the audit log: an organization's events, never another's."""

from __future__ import annotations

from datetime import datetime

from runtools.server.store.database import Database
from runtools.server.store.models import AuditEvent
from runtools.server.store.pagination import Page
from runtools.server.store.repositories.audit import list_events


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
