"""``rt.audit_logs``: read the organization's audit log, newest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runtools._models import AuditLogEntry
from runtools._pagination import AsyncPager, CursorPage, SyncPager
from runtools._resource import AsyncResource, SyncResource

__all__ = ["AsyncAuditLogs", "AuditLogs"]

_PATH = "/audit-logs"


def _timestamp(value: datetime | str | None) -> str | None:
    """An ISO 8601 UTC string for the wire; naive datetimes are taken as UTC."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _list_params(
    action: str | None,
    since: datetime | str | None,
    until: datetime | str | None,
    limit: int | None,
    cursor: str | None,
    actor: str | None = None,
) -> dict[str, Any]:
    return {
        "action": action,
        "actor": actor,
        "since": _timestamp(since),
        "until": _timestamp(until),
        "limit": limit,
        "cursor": cursor,
    }


class AuditLogs(SyncResource):
    def list(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SyncPager[AuditLogEntry]:
        """Audit events, optionally of one ``action``, by one ``actor`` (a key's, session's
        or user's id) and within ``[since, until]``.

        Iterating the result walks every page; ``limit`` is the page size.
        """

        def fetch(page_cursor: str | None) -> CursorPage[AuditLogEntry]:
            params = _list_params(action, since, until, limit, page_cursor, actor)
            return self._client._request("GET", _PATH, params=params).page(AuditLogEntry)

        return SyncPager(fetch, cursor=cursor)


class AsyncAuditLogs(AsyncResource):
    def list(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AsyncPager[AuditLogEntry]:
        """Audit events, optionally of one ``action``, by one ``actor`` (a key's, session's
        or user's id) and within ``[since, until]``.

        ``async for`` over the result walks every page; ``limit`` is the page size.
        """

        async def fetch(page_cursor: str | None) -> CursorPage[AuditLogEntry]:
            params = _list_params(action, since, until, limit, page_cursor, actor)
            envelope = await self._client._request("GET", _PATH, params=params)
            return envelope.page(AuditLogEntry)

        return AsyncPager(fetch, cursor=cursor)
