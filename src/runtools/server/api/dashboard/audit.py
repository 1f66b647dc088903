"""The organization's audit log, for its admins, filtered as ``GET /v1/audit-logs`` is.

Reading it is ``AuditLog.search``'s; no other page lives here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from starlette.requests import Request
from starlette.responses import Response

from runtools.server.api.dashboard.visit import Gate, Visit, older, page_router
from runtools.server.api.guards import PUBLIC, Requirement

router = page_router()

# What the API's guard asks of the same call (api/audit_logs.py).
READ_AUDIT = Gate(
    Requirement(scope="org:read", role="admin"),
    "Audit log",
    "audit",
    "The audit log is for the organization's admins.",
)


def _moment(value: str) -> datetime | None:
    """A ``datetime-local`` field's value (or an ISO 8601 time), as UTC; None if blank or bad."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.get("/dashboard/audit-log", name="dashboard-audit-log")
async def audit_log_page(
    request: Request,
    _: Annotated[None, PUBLIC],
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=40)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The organization's audit log, newest first, for its admins (as ``GET /v1/audit-logs``).

    Filtered by action, by actor (a key's, session's or user's id) and by time;
    the link to older events keeps the filters.
    """
    if not isinstance(visit := await Visit.start(request, READ_AUDIT), Visit):
        return visit
    page = await visit.call(
        visit.runtime.audit_log.search,
        visit.principal.org_id,
        action=action or None,
        actor=actor.strip() or None,
        since=_moment(since),
        until=_moment(until),
        limit=50,
        cursor=cursor or None,
    )
    filters = {"action": action, "actor": actor.strip(), "since": since, "until": until}
    return visit.page(
        "audit_log.html",
        title="Audit log",
        nav="audit",
        events=page.items,
        filters=filters,
        more=older("/dashboard/audit-log", page.next_cursor, **filters),
    )
