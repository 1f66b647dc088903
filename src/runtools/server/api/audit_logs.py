"""``GET /v1/audit-logs``: the organization's security events, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.requests import Request

from runtools.server.api.context import request_id_of, runtime_of
from runtools.server.api.envelope import ERROR_RESPONSES, ListEnvelope, ListMeta, WireModel
from runtools.server.api.guards import requires
from runtools.server.api.route_table import operation_id
from runtools.server.domain.clock import as_utc
from runtools.server.domain.principal import Principal
from runtools.server.services.audit import AuditLogService
from runtools.server.store.pagination import DEFAULT_LIMIT, MAX_LIMIT


def _iso_8601_only(value: object) -> object:
    # Pydantic would read "0.0" as Unix time; the documented (and schema) form is ISO 8601.
    if isinstance(value, str) and value.replace(".", "", 1).lstrip("-").isdigit():
        raise ValueError("must be an ISO 8601 timestamp such as 2026-01-15T12:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_8601_only)]

router = APIRouter(
    prefix="/v1/audit-logs",
    tags=["audit-logs"],
    responses=ERROR_RESPONSES,
    generate_unique_id_function=operation_id,
)


class AuditEventOut(WireModel):
    id: str
    action: str
    outcome: str
    reason: str | None
    actor_type: str
    actor_id: str | None
    org_id: str | None
    target_type: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    created_at: datetime


@router.get("", name="list")
async def list_audit_logs(
    request: Request,
    principal: Annotated[Principal, requires(scope="org:read", role="admin")],
    action: Annotated[str | None, Query(max_length=64, examples=["auth.failed"])] = None,
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
        )
    )
    return ListEnvelope(
        data=[
            AuditEventOut(
                id=e.id,
                action=e.action,
                outcome=e.outcome,
                reason=e.reason,
                actor_type=e.actor_type,
                actor_id=e.actor_id,
                org_id=e.org_id,
                target_type=e.target_type,
                target_id=e.target_id,
                ip=e.ip,
                user_agent=e.user_agent,
                request_id=e.request_id,
                details=e.details,
                created_at=as_utc(e.created_at),
            )
            for e in page.items
        ],
        meta=ListMeta(
            request_id=request_id_of(request), has_more=page.has_more, next_cursor=page.next_cursor
        ),
    )
