"""``GET /v1/audit-logs``: the organization's security events, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import Query
from pydantic import BeforeValidator
from starlette.requests import Request

from runtools.server.api.context import request_id_of, runtime_of
from runtools.server.api.envelope import ListEnvelope, ListMeta
from runtools.server.api.guards import requires
from runtools.server.api.route_table import tagged_router
from runtools.server.domain.clock import as_utc
from runtools.server.domain.paging import DEFAULT_LIMIT, MAX_LIMIT
from runtools.server.domain.principal import Principal
from runtools.server.services.audit import AuditEventOut, AuditLogService


def _iso_8601_only(value: object) -> object:
    # Pydantic would read "0.0" as Unix time; the documented (and schema) form is ISO 8601.
    if isinstance(value, str) and value.replace(".", "", 1).lstrip("-").isdigit():
        raise ValueError("must be an ISO 8601 timestamp such as 2026-01-15T12:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_8601_only)]

router = tagged_router("audit-logs", "/v1/audit-logs")


@router.get("", name="list")
async def list_audit_logs(
    request: Request,
    principal: Annotated[Principal, requires(scope="org:read", role="admin")],
    action: Annotated[str | None, Query(max_length=64, examples=["auth.failed"])] = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=40,
            examples=["key_2bKx7TgQ"],
            description="Only events by this actor: a key's, session's or user's id",
        ),
    ] = None,
    since: Annotated[Timestamp | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListEnvelope[AuditEventOut]:
    """Newest first. Failed authentications with this org's keys appear here."""
    service: AuditLogService = runtime_of(request).audit_log
    page = await anyio.to_thread.run_sync(
        lambda: service.search(
            principal.org_id,
            action=action,
            since=as_utc(since) if since else None,
            until=as_utc(until) if until else None,
            limit=limit,
            cursor=cursor,
            actor=actor,
        )
    )
    return ListEnvelope(
        data=page.items,
        meta=ListMeta(
            request_id=request_id_of(request), has_more=page.has_more, next_cursor=page.next_cursor
        ),
    )
